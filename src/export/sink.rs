//! The local-directory destination, published atomically.
//!
//! ```text
//! <root>/.windsock-staging/<env>/<run_id>/...      while writing
//! <root>/<env>/<table>/export_date=D/part-00000.csv.gz   renamed into place per table
//! <root>/<env>/_manifests/export_date=D/_manifest.json   removed first, written last
//! ```
//!
//! Renames stay inside one file system (the staging directory is under the
//! root), so each is atomic. An export that stops half-way leaves tables of
//! that date without a manifest, never a manifest without its tables.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where an export's files go: a local directory or S3.
#[derive(Debug)]
pub enum Sink {
    /// A local directory.
    Local(LocalSink),
    /// An S3 prefix (feature `aws`).
    #[cfg(feature = "aws")]
    S3(super::s3::S3Sink),
}

impl Sink {
    /// Creates the local staging file a table is written to.
    pub fn create_part(&self, table: &str, ext: &str) -> std::io::Result<std::fs::File> {
        match self {
            Sink::Local(s) => s.create_part(table, ext),
            #[cfg(feature = "aws")]
            Sink::S3(s) => s.staging().create_part(table, ext),
        }
    }

    /// Publishes a finished table; returns its path relative to the root.
    pub async fn publish_table(&self, table: &str) -> std::io::Result<String> {
        match self {
            Sink::Local(s) => s.publish_table(table),
            #[cfg(feature = "aws")]
            Sink::S3(s) => s.publish_table(table).await,
        }
    }

    /// Writes the manifest, last; returns where it went.
    pub async fn publish_manifest(&self, json: &str) -> std::io::Result<String> {
        match self {
            Sink::Local(s) => s.publish_manifest(json).map(|p| p.display().to_string()),
            #[cfg(feature = "aws")]
            Sink::S3(s) => s.publish_manifest(json).await,
        }
    }
}

/// A local directory destination.
#[derive(Debug)]
pub struct LocalSink {
    root: PathBuf,
    environment: String,
    date: String,
    staging: PathBuf,
}

/// Creates `dir` and its missing parents readable by windsock's user only
/// (0700): staged files are rows of the metadata DB.
pub fn private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// The local staging root of S3 exports: `$TMPDIR/windsock-staging-<pid>`
/// (0700). Roots of processes that are gone (a crash, a kill) are removed
/// first, so nothing of an earlier run stays in the temporary directory.
pub fn process_staging_root() -> PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix("windsock-staging-"))
                .and_then(|p| p.parse::<u32>().ok());
            let gone = pid.is_some_and(|p| {
                p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()
            });
            if gone && cfg!(target_os = "linux") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    tmp.join(format!("windsock-staging-{}", std::process::id()))
}

/// Directory of staging areas under the root.
const STAGING: &str = ".windsock-staging";

impl LocalSink {
    /// Prepares an export: removes the manifest of this date (the export
    /// is about to change) and stale staging areas of earlier runs.
    pub fn begin(
        root: &Path,
        environment: &str,
        date: &str,
        run_id: &str,
    ) -> std::io::Result<LocalSink> {
        // Config validation allows no other names; a second line of defence
        // for library callers: the name is one plain directory.
        let plain = |s: &str| {
            s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '='))
        };
        if !plain(environment) || !plain(run_id) || !plain(date) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{environment}` / `{run_id}` / `{date}` is not a plain directory name"),
            ));
        }
        let sink = LocalSink {
            root: root.to_owned(),
            environment: environment.to_owned(),
            date: date.to_owned(),
            staging: root.join(STAGING).join(environment).join(run_id),
        };
        match std::fs::remove_file(sink.manifest_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // Stale areas of this environment only: other environments may be
        // exporting into the same root right now.
        let _ = std::fs::remove_dir_all(root.join(STAGING).join(environment));
        private_dirs(&sink.staging)?;
        Ok(sink)
    }

    /// `<env>/<table>/export_date=D`, relative to the root.
    pub fn table_dir(&self, table: &str) -> String {
        format!("{}/{table}/export_date={}", self.environment, self.date)
    }

    /// `<env>/_manifests/export_date=D/_manifest.json`, relative to the root.
    pub fn manifest_rel(&self) -> String {
        format!(
            "{}/_manifests/export_date={}/_manifest.json",
            self.environment, self.date
        )
    }

    /// The final manifest path.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(self.manifest_rel())
    }

    /// The staged files of a table.
    pub fn staged_files(&self, table: &str) -> std::io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.staging.join(self.table_dir(table)))? {
            out.push(e?.path());
        }
        out.sort();
        Ok(out)
    }

    /// Creates the staging file a table is written to.
    pub fn create_part(&self, table: &str, ext: &str) -> std::io::Result<std::fs::File> {
        let dir = self.staging.join(self.table_dir(table));
        std::fs::create_dir_all(&dir)?;
        std::fs::File::create(dir.join(format!("part-00000.{ext}")))
    }

    /// Moves a finished table into place, replacing an earlier export of
    /// the same date.
    pub fn publish_table(&self, table: &str) -> std::io::Result<String> {
        let rel = self.table_dir(table);
        let (from, to) = (self.staging.join(&rel), self.root.join(&rel));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if to.exists() {
            std::fs::remove_dir_all(&to)?;
        }
        std::fs::rename(from, to)?;
        Ok(rel)
    }

    /// Removes this run's staging area (and the environment's directory
    /// above it when it is left empty).
    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        // Up to the root: empty directories only.
        let mut dir = self.staging.parent();
        while let Some(d) = dir {
            if std::fs::remove_dir(d).is_err() || d == self.root {
                break;
            }
            dir = d.parent();
        }
    }

    /// Writes the manifest, last, through a synced temporary file; then
    /// removes the staging area.
    pub fn publish_manifest(&self, json: &str) -> std::io::Result<PathBuf> {
        let path = self.manifest_path();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = self.staging.join("_manifest.json");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(json.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        let _ = std::fs::remove_dir_all(&self.staging);
        // Leaves no empty staging directory behind (fails harmlessly if
        // another run's area is there).
        let _ = std::fs::remove_dir(self.root.join(STAGING).join(&self.environment));
        let _ = std::fs::remove_dir(self.root.join(STAGING));
        Ok(path)
    }
}
