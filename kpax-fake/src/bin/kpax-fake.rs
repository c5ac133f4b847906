//! `kpax-fake [--brokers N] [--topic NAME:PARTITIONS]... [--auto-create]`:
//! starts a fake Kafka cluster, prints its bootstrap address, serves until
//! Ctrl-C.

use kpax_fake::{run_until_ctrl_c, FakeOptions};

fn usage() -> ! {
    eprintln!("usage: kpax-fake [--brokers N] [--topic NAME:PARTITIONS]... [--auto-create]");
    std::process::exit(2)
}

fn main() -> std::io::Result<()> {
    let mut options = FakeOptions {
        brokers: 3,
        ..FakeOptions::default()
    };
    let mut topics = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => {
                options.brokers = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
            }
            "--topic" => {
                let spec = args.next().unwrap_or_else(|| usage());
                let (name, n) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
                let n = n.parse().unwrap_or_else(|_| usage());
                topics.push((name.to_string(), n));
            }
            "--auto-create" => options.auto_create_topics = true,
            _ => usage(),
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_until_ctrl_c(options, &topics))
}
