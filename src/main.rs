//! The `windsock` binary: parses the command line and maps outcomes to exit
//! statuses (64 = bad config, 69 = database unavailable, 1 = other failure).

use std::process::ExitCode;

use clap::Parser;
use windsock::cli::{BenchCommand, Cli, Command, ConfigCommand, ReportFormat, RunArgs, TargetArgs};
use windsock::config::{Settings, TargetSettings, ValidatedConfig};

/// sysexits EX_CONFIG-ish: the configuration is unusable.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("windsock: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(cli))
}

/// Loads the config (file, env), adds `--db-url` as the single target,
/// starts logging and reads what the config points to (URLs from the
/// environment, secrets); not yet validated.
async fn load_settings(args: &TargetArgs) -> Result<Settings, ExitCode> {
    let mut settings = settings_from(args).map_err(config_error)?;
    windsock::logging::init(&settings.log);
    settings.resolve_sources().await.map_err(config_error)?;
    Ok(settings)
}

/// The config file and `WINDSOCK_*` variables, with the flags applied.
fn settings_from(args: &TargetArgs) -> Result<Settings, windsock::config::ConfigError> {
    let mut settings = Settings::load(args.config.config.as_deref())?;
    if let Some(url) = &args.db_url {
        settings.targets = vec![TargetSettings::from_url(&args.environment, url)];
    }
    if let Some(level) = &args.log.level {
        settings.log.level = level.clone();
    }
    if let Some(format) = args.log.format {
        settings.log.format = format;
    }
    Ok(settings)
}

/// `windsock run`'s own flags on top of the settings.
fn run_overrides(settings: &mut Settings, args: &RunArgs) {
    if let Some(listen) = &args.listen {
        settings.server.listen = listen.clone();
    }
    if let Some(path) = &args.telemetry_path {
        settings.server.telemetry_path = path.clone();
    }
    if let Some(file) = &args.web_config {
        settings.server.web_config_file = Some(file.clone());
    }
}

/// Reads the configuration again the way `windsock run` read it at start
/// (SIGHUP). The log settings of the running process stay.
fn reloader(args: RunArgs) -> windsock::daemon::Reload {
    Box::new(move || {
        let args = args.clone();
        Box::pin(async move {
            let mut settings = settings_from(&args.target).map_err(|e| e.to_string())?;
            settings
                .resolve_sources()
                .await
                .map_err(|e| e.to_string())?;
            run_overrides(&mut settings, &args);
            settings.validate().map_err(|e| e.to_string())
        })
    })
}

/// Loads and validates the config, adding `--db-url` as a single target.
async fn load(args: &TargetArgs) -> Result<ValidatedConfig, ExitCode> {
    load_settings(args).await?.validate().map_err(config_error)
}

/// A missing target is a configuration error (64); the rest exit 1.
fn daemon_error(e: &windsock::daemon::DaemonError) -> ExitCode {
    if matches!(e, windsock::daemon::DaemonError::NoTargets) {
        eprintln!("windsock: invalid configuration: {e}");
        ExitCode::from(EXIT_CONFIG)
    } else {
        eprintln!("windsock: {e}");
        ExitCode::from(1)
    }
}

fn config_error(e: windsock::config::ConfigError) -> ExitCode {
    eprintln!("windsock: invalid configuration: {e}");
    ExitCode::from(EXIT_CONFIG)
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => {
            let mut settings = match load_settings(&args.target).await {
                Ok(s) => s,
                Err(code) => return code,
            };
            run_overrides(&mut settings, &args);
            let config = match settings.validate() {
                Ok(c) => c,
                Err(e) => return config_error(e),
            };
            let reload = Some(reloader(args));
            match windsock::daemon::run(config, reload, windsock::daemon::shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "windsock stopped.");
                    daemon_error(&e)
                }
            }
        }
        Command::Check(args) => {
            let config = match load(&args.target).await {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut report = String::new();
            let res = windsock::check::run(&config, args.samples, &mut report).await;
            print!("{report}");
            match res {
                Ok(outcome) => ExitCode::from(outcome.exit_code()),
                Err(e) => daemon_error(&e),
            }
        }
        Command::Report(args) => {
            let config = match load(&args.target).await {
                Ok(c) => c,
                Err(code) => return code,
            };
            match windsock::check::report(&config).await {
                Ok((report, outcome)) => {
                    match args.format {
                        ReportFormat::Text => print!("{}", windsock::report::render_text(&report)),
                        ReportFormat::Json => match serde_json::to_string_pretty(&report) {
                            Ok(j) => println!("{j}"),
                            Err(e) => {
                                eprintln!("windsock: cannot encode the report: {e}");
                                return ExitCode::from(1);
                            }
                        },
                    }
                    ExitCode::from(outcome.exit_code())
                }
                Err(e) => daemon_error(&e),
            }
        }
        Command::Config(ConfigCommand::Validate(args)) => {
            let mut settings = match Settings::load(args.config.as_deref()) {
                Ok(s) => s,
                Err(e) => return config_error(e),
            };
            if let Err(e) = settings.resolve_sources().await {
                return config_error(e);
            }
            match settings.validate() {
                Ok(v) => {
                    println!(
                        "configuration is valid: listen {}, {} target(s){}",
                        v.listen,
                        v.targets.len(),
                        v.targets
                            .iter()
                            .map(|t| format!("\n  {}: {}", t.environment, t.url))
                            .collect::<String>()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        Command::Bench(cmd) => {
            let res = match cmd {
                BenchCommand::Cycle {
                    db_url,
                    cycles,
                    between,
                    window,
                } => windsock::bench::cycle(&db_url, cycles, between.as_deref(), window).await,
                BenchCommand::Scrape {
                    series,
                    concurrency,
                    duration,
                } => windsock::bench::scrape(series, concurrency, duration).await,
                BenchCommand::Startup { db_url, runs } => windsock::bench::startup(&db_url, runs),
            };
            match res {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("windsock bench: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Export(windsock::cli::ExportCommand::Run(args)) => export_run(args).await,
        Command::Admin(windsock::cli::AdminCommand::HashToken) => {
            let mut token = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut token) {
                eprintln!("windsock admin hash-token: cannot read standard input: {e}");
                return ExitCode::from(1);
            }
            let token = token.trim_end_matches(['\r', '\n']);
            if token.len() < 16 {
                eprintln!(
                    "windsock admin hash-token: the token is shorter than 16 characters; \
                     use a long random one (e.g. `openssl rand -hex 32`)"
                );
                return ExitCode::from(64);
            }
            println!("{}", windsock::admin::auth::hash_token(token));
            ExitCode::SUCCESS
        }
        Command::Demo(args) => match windsock::demo::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("windsock demo: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// `windsock export run`.
async fn export_run(args: windsock::cli::ExportRunArgs) -> ExitCode {
    let mut settings = match load_settings(&args.target).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    if settings.targets.is_empty() && !args.demo {
        eprintln!(
            "windsock: invalid configuration: nothing to export: pass --db-url, configure \
             [[targets]], or --demo for the demo database"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    if args.demo {
        let path = std::path::PathBuf::from("windsock-demo.db");
        if !path.exists()
            && let Err(e) = windsock::demo::create(&path, 42).await
        {
            eprintln!("windsock export: cannot create the demo database: {e}");
            return ExitCode::from(1);
        }
        tracing::info!(path = %path.display(), "Exporting the demo database.");
        settings.targets = vec![TargetSettings::from_url(
            "demo",
            &format!("sqlite:///{}", path.display()),
        )];
    }
    let e = &mut settings.export;
    if let Some(m) = args.mode {
        e.mode = m;
    }
    if let Some(to) = &args.to {
        e.to = to.clone();
    }
    if let Some(f) = args.format {
        e.format = f;
    }
    if let Some(w) = args.window {
        e.window = w;
    }
    if !args.tables.is_empty() {
        e.tables = args.tables.clone();
    }
    let end = match args.end.as_deref().map(windsock::export::parse_iso) {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => {
            eprintln!("windsock: invalid --end: use 2026-11-25 or 2026-11-25T06:00:00Z");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = match settings.validate() {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let store =
        windsock::metrics::Store::new(config.targets.iter().map(|t| t.environment.as_str()));
    let mut worst = 0u8;
    for target in &config.targets {
        let req = windsock::export::Request::from_settings(
            &config.settings.export,
            &target.environment,
            config.settings.database.statement_timeout,
            end,
        );
        let db = match windsock::db::Db::new(&target.url, &config.settings.database) {
            Ok(db) => db,
            Err(e) => {
                eprintln!("windsock export: {e}");
                return ExitCode::from(69);
            }
        };
        let engine = windsock::export::Engine::from_settings(&config.settings.export, &target.url);
        let res = windsock::export::run_with(&db, &req, &engine, &store).await;
        db.close().await;
        match res {
            Ok(m) => {
                println!(
                    "{}: {} ({} rows) -> {}",
                    target.environment,
                    m.status,
                    m.tables.iter().filter_map(|t| t.rows).sum::<u64>(),
                    req.to
                );
                for t in &m.tables {
                    println!(
                        "  {:<16} {:<9} {}",
                        t.table,
                        t.status,
                        t.rows.map_or_else(
                            || t.reason
                                .clone()
                                .or_else(|| t.error.clone())
                                .unwrap_or_default(),
                            |r| format!("{r} rows")
                        )
                    );
                }
                if m.status != "complete" {
                    worst = worst.max(1);
                }
            }
            Err(e @ windsock::export::ExportError::AlreadyRunning(_)) => {
                eprintln!("windsock export: {}: {e}", target.environment);
                worst = worst.max(75);
            }
            Err(windsock::export::ExportError::Detect(e)) => {
                eprintln!("windsock export: {}: {e}", target.environment);
                worst = worst.max(69);
            }
            Err(e) => {
                eprintln!("windsock export: {}: {e}", target.environment);
                worst = worst.max(1);
            }
        }
    }
    ExitCode::from(worst)
}
