//! The `windsock` binary: parses the command line and maps outcomes to exit
//! statuses (64 = bad config, 69 = database unavailable, 1 = other failure).

use std::process::ExitCode;

use clap::Parser;
use windsock::cli::{BenchCommand, Cli, Command, ConfigCommand, ReportFormat, TargetArgs};
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

/// Loads and validates the config, adding `--db-url` as a single target.
fn load(args: &TargetArgs) -> Result<ValidatedConfig, ExitCode> {
    let mut settings = Settings::load(args.config.config.as_deref()).map_err(config_error)?;
    if let Some(url) = &args.db_url {
        settings.targets = vec![TargetSettings {
            environment: args.environment.clone(),
            url: url.clone(),
            password_file: None,
            password_env: None,
        }];
    }
    windsock::logging::init(&settings.log);
    settings.validate().map_err(config_error)
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
            let mut config = match load(&args.target) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Some(listen) = args.listen {
                config.listen = listen;
            }
            match windsock::daemon::run(config, windsock::daemon::shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "windsock stopped.");
                    daemon_error(&e)
                }
            }
        }
        Command::Check(args) => {
            let config = match load(&args) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut report = String::new();
            let res = windsock::check::run(&config, &mut report).await;
            print!("{report}");
            match res {
                Ok(outcome) => ExitCode::from(outcome.exit_code()),
                Err(e) => daemon_error(&e),
            }
        }
        Command::Report(args) => {
            let config = match load(&args.target) {
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
            let settings = match Settings::load(args.config.as_deref()) {
                Ok(s) => s,
                Err(e) => return config_error(e),
            };
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
