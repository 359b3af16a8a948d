//! `zae-aggregator poll` against a real moto server (docs/poll.md): the
//! binary reads the table's DynamoDB stream, and the snapshot counters must
//! equal the ground truth computed from every record of that stream
//! (tests/common/truth.rs), however the poller is stopped and restarted.
//!
//! * `caught_up_counters_equal_the_truth`: one `--until-caught-up` run, the
//!   checkpoint in the table itself; a second run finds nothing to do;
//!   `--from latest` handles nothing already in the stream;
//! * `sigterm_finishes_the_batch_and_writes_the_checkpoint`: a continuous
//!   run stopped by SIGTERM exits 0 with its checkpoint written, and a
//!   restart completes the counters;
//! * `sigkill_at_random_points_then_restart`: `ZAE_POLL_RUNS` runs (default
//!   5; `tests/poll/kill-restart.sh` runs 50), each a fresh table and
//!   stream, the poller SIGKILLed one to three times at random points and
//!   restarted from its checkpoint (a file or the table item, alternately):
//!   the counters equal the truth every time.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::moto::Moto;
use common::poller::{last_line, make_traffic, poll, scratch, stream_arn, verdict, wait, whole_stream};
use common::rng::Rng;
use common::streams;
use zae_aggregator::stream::{seq_cmp, Checkpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_counters_equal_the_truth() {
    let moto = Moto::start();
    let dir = scratch("caught-up");
    let log = dir.join("poll.log");
    let table = "poll-caught-up";
    moto.create_table(table).await;
    let started_s = zae_aggregator::lambda::now_ms() / 1000;
    make_traffic(&moto, table, 7, 160).await;
    let arn = stream_arn(&moto, table).await;

    // Nothing new arrives after --from latest: it handles nothing.
    let latest = dir.join("latest.json");
    let mut child = poll(
        &moto,
        &["--table", table, "--from", "latest", "--until-caught-up", "--checkpoint", latest.to_str().unwrap()],
        &log,
    );
    assert_eq!(wait(&mut child, Duration::from_secs(120), &log), 0);
    let usage = moto.scan(table).await.iter().filter(|i| i["SK"].as_s().unwrap().starts_with("#USAGE#")).count();
    assert_eq!(usage, 0, "--from latest handled records already in the stream");

    // The real run: checkpoint in the table, Lambda's default batch size.
    let mut child = poll(&moto, &["--stream-arn", &arn, "--until-caught-up", "--batching-window", "1"], &log);
    assert_eq!(wait(&mut child, Duration::from_secs(300), &log), 0, "{}", std::fs::read_to_string(&log).unwrap());
    let v = verdict(&moto, table, &arn, started_s).await;
    assert!(v.holds(), "{v:#?}");
    let stopped = last_line(&log);
    assert_eq!(stopped["message"], "Poll stopped");
    assert!(stopped["records"].as_u64().unwrap() > 100, "{stopped}");

    // A second run starts from the checkpoint item: nothing but the
    // checkpoint's own record is left, and it is not handled.
    let mut child = poll(&moto, &["--table", table, "--until-caught-up"], &log);
    assert_eq!(wait(&mut child, Duration::from_secs(120), &log), 0);
    assert_eq!(last_line(&log)["records"], 0, "a second run re-handled records");
    let v = verdict(&moto, table, &arn, started_s).await;
    assert!(v.holds(), "{v:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_and_writes_the_checkpoint() {
    let moto = Moto::start();
    let dir = scratch("sigterm");
    let log = dir.join("poll.log");
    let checkpoint = dir.join("checkpoint.json");
    let table = "poll-sigterm";
    moto.create_table(table).await;
    let started_s = zae_aggregator::lambda::now_ms() / 1000;
    make_traffic(&moto, table, 11, 80).await;
    let arn = stream_arn(&moto, table).await;
    let last_seq = |records: &[Value]| streams::seq(records.last().unwrap()).to_string();
    let wanted = last_seq(&whole_stream(&moto, &arn).await);

    let args = ["--table", table, "--batch-size", "10", "--batching-window", "1", "--checkpoint"];
    let mut child = poll(&moto, &[&args[..], &[checkpoint.to_str().unwrap()]].concat(), &log);
    // Wait until it has handled everything there is, then add traffic and
    // stop it while that is being read.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = std::fs::read_to_string(&checkpoint).ok().and_then(|t| Checkpoint::from_json(&t).ok());
        let at = c.as_ref().and_then(|c| c.shards.values().next()).and_then(|p| p.sequence_number.clone());
        if at.is_some_and(|at| seq_cmp(&at, &wanted).is_ge()) {
            break;
        }
        assert!(Instant::now() < deadline, "the checkpoint never reached {wanted}: {c:?}");
        assert!(child.try_wait().unwrap().is_none(), "poll exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    make_traffic(&moto, table, 12, 60).await;
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(wait(&mut child, Duration::from_secs(60), &log), 0, "SIGTERM must end poll with 0");
    let stopped = last_line(&log);
    assert_eq!(stopped["message"], "Poll stopped", "{stopped}");
    let saved = Checkpoint::from_json(&std::fs::read_to_string(&checkpoint).unwrap()).expect("a whole checkpoint");
    assert_eq!(saved.stream_arn, arn);

    // The restart completes the counters.
    let mut child = poll(&moto, &[&args[..], &[checkpoint.to_str().unwrap(), "--until-caught-up"]].concat(), &log);
    assert_eq!(wait(&mut child, Duration::from_secs(300), &log), 0);
    let v = verdict(&moto, table, &arn, started_s).await;
    assert!(v.holds(), "{v:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_then_restart() {
    let runs: u64 = std::env::var("ZAE_POLL_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let seed: u64 = std::env::var("ZAE_POLL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let moto = Moto::start();
    let dir = scratch("sigkill");
    let mut kills = 0;
    for run in 0..runs {
        let mut rng = Rng::new(seed.wrapping_mul(1000).wrapping_add(run));
        let table = format!("poll-kill-{run}");
        let log = dir.join(format!("{table}.log"));
        moto.create_table(&table).await;
        let started_s = zae_aggregator::lambda::now_ms() / 1000;
        make_traffic(&moto, &table, seed + run, 120).await;
        let arn = stream_arn(&moto, &table).await;
        let batch = rng.range(1, 40).to_string();
        let file = dir.join(format!("{table}.json"));
        // Odd runs keep the checkpoint in the table item.
        let mut args = vec!["--stream-arn".to_string(), arn.clone(), "--batch-size".into(), batch.clone()];
        args.extend(["--batching-window".into(), "0".into()]);
        if run % 2 == 0 {
            args.extend(["--checkpoint".into(), file.to_str().unwrap().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for _ in 0..rng.range(1, 4) {
            let mut child = poll(&moto, &args, &log);
            tokio::time::sleep(Duration::from_millis(rng.range(200, 2500))).await;
            if child.try_wait().unwrap().is_none() {
                kills += 1;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut child = poll(&moto, &[&args[..], &["--until-caught-up"]].concat(), &log);
        assert_eq!(wait(&mut child, Duration::from_secs(300), &log), 0);
        let v = verdict(&moto, &table, &arn, started_s).await;
        assert!(v.holds(), "run {run} (seed {seed}, batch size {batch}): {v:#?}");
        if run % 2 == 0 {
            let c = Checkpoint::from_json(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let records = whole_stream(&moto, &arn).await;
            let last = streams::seq(records.last().unwrap());
            let at = c.shards.values().next().and_then(|p| p.sequence_number.clone());
            assert_eq!(at.as_deref(), Some(last), "run {run}: the checkpoint is not at the stream's end");
        }
        let _ = moto.ddb_client().delete_table().table_name(&table).send().await;
    }
    eprintln!("poll kill/restart: {runs} runs, {kills} SIGKILLs, counters equal the truth in every run");
    let _ = std::fs::remove_dir_all(&dir);
}
