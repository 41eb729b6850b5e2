//! S3: the client (standard credential chain and region, optional endpoint
//! override for S3-compatible stores and emulators), and the S3 destination
//! of direct mode.
//!
//! A table is written to a local staging file first, then uploaded (multipart
//! above [`PART_BYTES`]); the manifest is deleted before and put after
//! everything else, as for a local directory.

use aws_config::BehaviorVersion;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::error::display::DisplayErrorContext;
use tokio::io::AsyncReadExt as _;

use super::sink::LocalSink;
use crate::config::S3Settings;

/// Size of one multipart part (S3's minimum is 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// Bucket.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix]`.
    pub fn parse(text: &str) -> Option<S3Url> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(S3Url {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The key of `rel` under the prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

/// The shared AWS configuration: standard chain, then `settings`.
pub async fn sdk_config(settings: &S3Settings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = &settings.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(e) = &settings.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

/// An S3 client for `conf`; path-style when asked, or when an endpoint is
/// overridden (emulators and most S3-compatible stores need it).
pub fn client(conf: &aws_config::SdkConfig, settings: &S3Settings) -> aws_sdk_s3::Client {
    let path_style = settings
        .force_path_style
        .unwrap_or(conf.endpoint_url().is_some());
    let s3 = aws_sdk_s3::config::Builder::from(conf)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

fn s3_err(op: &str, e: impl std::error::Error) -> std::io::Error {
    std::io::Error::other(format!("S3 {op}: {}", DisplayErrorContext(e)))
}

/// Puts one object.
pub async fn put(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> std::io::Result<()> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| s3_err("PutObject", e))?;
    Ok(())
}

/// Uploads a file: one PutObject up to [`PART_BYTES`], multipart above,
/// aborted on failure so no partial object or orphaned parts remain.
pub async fn upload_file(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &std::path::Path,
) -> std::io::Result<u64> {
    let size = tokio::fs::metadata(path).await?.len();
    if size as usize <= PART_BYTES {
        put(
            client,
            bucket,
            key,
            tokio::fs::read(path).await?,
            "application/octet-stream",
        )
        .await?;
        return Ok(size);
    }
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_err("CreateMultipartUpload", e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| std::io::Error::other("S3 CreateMultipartUpload: no upload id"))?
        .to_owned();
    let res = async {
        let mut file = tokio::fs::File::open(path).await?;
        let mut parts = Vec::new();
        let mut number = 1;
        loop {
            let mut buf = Vec::with_capacity(PART_BYTES);
            (&mut file)
                .take(PART_BYTES as u64)
                .read_to_end(&mut buf)
                .await?;
            if buf.is_empty() {
                break;
            }
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| s3_err("UploadPart", e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            );
            number += 1;
        }
        client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_err("CompleteMultipartUpload", e))?;
        Ok::<_, std::io::Error>(size)
    }
    .await;
    if res.is_err() {
        let _ = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    res
}

/// Reads one object whole (manifests).
pub async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> std::io::Result<Vec<u8>> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_err("GetObject", e))?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| std::io::Error::other(format!("S3 GetObject body: {e}")))?;
    Ok(bytes.into_bytes().to_vec())
}

/// The S3 destination of direct mode.
#[derive(Debug)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    url: S3Url,
    staging: LocalSink,
}

impl S3Sink {
    /// Deletes the manifest of this date, then stages locally.
    pub async fn begin(
        client: aws_sdk_s3::Client,
        url: S3Url,
        environment: &str,
        date: &str,
        run_id: &str,
    ) -> std::io::Result<S3Sink> {
        // One root per run: runs in this process never clean each other's.
        let staging_root = super::sink::process_staging_root().join(run_id);
        let staging = LocalSink::begin(&staging_root, environment, date, run_id)?;
        let key = url.key(&staging.manifest_rel());
        client
            .delete_object()
            .bucket(&url.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_err("DeleteObject", e))?;
        Ok(S3Sink {
            client,
            url,
            staging,
        })
    }

    /// The local staging area.
    pub fn staging(&self) -> &LocalSink {
        &self.staging
    }

    /// Uploads a finished table, then removes objects of an earlier export
    /// of this table and date that the new one did not overwrite.
    pub async fn publish_table(&self, table: &str) -> std::io::Result<String> {
        let rel = self.staging.table_dir(table);
        let prefix = format!("{}/", self.url.key(&rel));
        let mut written = Vec::new();
        for file in self.staging.staged_files(table)? {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let key = self.url.key(&format!("{rel}/{name}"));
            upload_file(&self.client, &self.url.bucket, &key, &file).await?;
            written.push(key);
            let _ = std::fs::remove_file(&file);
        }
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.url.bucket)
            .prefix(&prefix)
            .send()
            .await
            .map_err(|e| s3_err("ListObjectsV2", e))?;
        for stale in listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|k| !written.iter().any(|w| w == k))
        {
            self.client
                .delete_object()
                .bucket(&self.url.bucket)
                .key(stale)
                .send()
                .await
                .map_err(|e| s3_err("DeleteObject", e))?;
        }
        Ok(rel)
    }

    /// Puts the manifest, last; removes the local staging area.
    pub async fn publish_manifest(&self, json: &str) -> std::io::Result<String> {
        let key = self.url.key(&self.staging.manifest_rel());
        put(
            &self.client,
            &self.url.bucket,
            &key,
            json.as_bytes().to_vec(),
            "application/json",
        )
        .await?;
        self.staging.discard();
        Ok(format!("s3://{}/{key}", self.url.bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::S3Url;

    #[test]
    fn urls_parse() {
        let u = S3Url::parse("s3://bucket/a/b/").unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("bucket", "a/b"));
        assert_eq!(u.key("x/y"), "a/b/x/y");
        assert_eq!(S3Url::parse("s3://bucket").unwrap().key("k"), "k");
        assert_eq!(S3Url::parse("s3:///x"), None);
        assert_eq!(S3Url::parse("/tmp/x"), None);
    }
}
