//! `zae-aggregator`: the Lambda runtime and the command line (see [`zae_aggregator::cli`]).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    zae_aggregator::cli::main().await
}
