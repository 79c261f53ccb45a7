//! The `kiln` binary: `serve` (the default), `migrate`, `gen-data` and `healthcheck`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kiln::config::{Overrides, Settings};
use kiln::datagen::{ClassificationSpec, make_classification, write_csv};
use kiln::startup::Application;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Model-optimization service")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct GlobalArgs {
    /// A TOML file layered over the built-in defaults.
    #[arg(long, global = true, env = "KILN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (KILN_LISTEN).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Data directory: database and blobs (KILN_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Concurrent jobs; 0 = one per core (KILN_WORKERS).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// `text` or `json` (KILN_LOG_FORMAT).
    #[arg(long, global = true)]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Write a synthetic classification dataset as CSV (like scikit-learn's make_classification).
    GenData(GenDataArgs),
    /// Exit 0 when the service at the configured address answers /healthz (for container health checks).
    Healthcheck,
    /// Print a model file's accuracy, size and single-thread speed on a dataset (CSV or NPZ) as JSON.
    Measure(MeasureArgs),
}

#[derive(Args)]
struct MeasureArgs {
    /// A kiln model file (safetensors, int8 safetensors or .kilnz).
    #[arg(long)]
    model: PathBuf,
    /// A dataset file as `POST /v1/datasets` takes it.
    #[arg(long)]
    data: PathBuf,
    /// Single-row calls whose median is the batch-1 latency.
    #[arg(long, default_value_t = 2_000)]
    calls: usize,
}

#[derive(Args)]
struct GenDataArgs {
    #[arg(long, default_value_t = 16_000)]
    rows: usize,
    #[arg(long, default_value_t = 100)]
    features: usize,
    #[arg(long, default_value_t = 10)]
    informative: usize,
    #[arg(long, default_value_t = 2)]
    classes: usize,
    #[arg(long, default_value_t = 1.0)]
    class_sep: f32,
    #[arg(long, default_value_t = 0.01)]
    flip_y: f32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        config_file: cli.global.config,
        listen: cli.global.listen,
        data_dir: cli.global.data_dir,
        workers: cli.global.workers,
        log_format: cli.global.log_format,
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::GenData(args) => gen_data(&args),
        Command::Measure(args) => measure(&args),
        command => match Settings::load(&overrides) {
            Err(e) => Err(e.to_string()),
            Ok(settings) => match command {
                Command::Healthcheck => healthcheck(&settings),
                Command::Migrate => run_async(migrate(settings)),
                _ => run_async(serve(settings)),
            },
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kiln: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(fut)
}

async fn serve(settings: Settings) -> Result<(), String> {
    kiln::telemetry::init(settings.log_format);
    let workers = settings.worker_count();
    let data_dir = settings.data_dir.clone();
    let app = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(addr = %app.local_addr(), workers, data_dir = %data_dir.display(), "kiln is ready");
    // Scripts and tests wait for this line; it names the real port when 0 was asked for.
    println!("kiln listening on http://{}", app.local_addr());
    let _ = std::io::stdout().flush();
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    kiln::telemetry::init(settings.log_format);
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| e.to_string())?;
    let store = kiln::store::Store::connect(&settings.data_dir)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    println!("migrations applied to {}", settings.data_dir.display());
    Ok(())
}

fn measure(args: &MeasureArgs) -> Result<(), String> {
    let bytes = std::fs::read(&args.model)
        .map_err(|e| format!("cannot read {}: {e}", args.model.display()))?;
    let options = kiln::formats::dataset_file::ParseOptions {
        filename: args
            .data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        label_column: None,
        task: None,
        max_rows: usize::MAX,
        max_features: usize::MAX,
        ..Default::default()
    };
    let data = kiln::formats::dataset_file::parse_path(&args.data, &options)
        .map_err(|e| e.to_string())?
        .dataset;
    let metrics = kiln::measure::measure(&bytes, &data, args.calls)?;
    println!("{}", serde_json::Value::Object(metrics));
    Ok(())
}

fn gen_data(args: &GenDataArgs) -> Result<(), String> {
    let spec = ClassificationSpec {
        rows: args.rows,
        features: args.features,
        informative: args.informative,
        classes: args.classes,
        class_sep: args.class_sep,
        flip_y: args.flip_y,
        seed: args.seed,
    };
    let ds = make_classification(&spec).map_err(|e| e.to_string())?;
    match &args.output {
        Some(path) => {
            let file =
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            write_csv(&ds, std::io::BufWriter::new(file)).map_err(|e| e.to_string())
        }
        None => write_csv(&ds, std::io::BufWriter::new(std::io::stdout().lock()))
            .map_err(|e| e.to_string()),
    }
}

/// A plain HTTP/1.0 GET, so the container image needs no curl.
fn healthcheck(settings: &Settings) -> Result<(), String> {
    let mut addr: SocketAddr = settings
        .listen
        .to_socket_addrs()
        .map_err(|e| format!("bad listen address {}: {e}", settings.listen))?
        .next()
        .ok_or_else(|| format!("bad listen address {}", settings.listen))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = Duration::from_secs(3);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .take(4096)
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        println!("healthy: {status_line}");
        Ok(())
    } else {
        Err(format!("unhealthy: {status_line}"))
    }
}
