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
//!   the counters equal the truth every time;
//! * `a_shard_split_is_read_children_after_their_parent`: the stream shown
//!   as several shards through the proxy's split view
//!   (tests/common/split_stream.rs); one splits while `poll` runs: the
//!   children are discovered and read only after their parent is finished,
//!   and the counters equal the truth.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::fault_proxy::FaultProxy;
use common::moto::Moto;
use common::poller::{
    command, last_line, make_traffic, poll, scratch, stream_arn, traffic_table, verdict, wait, whole_stream,
};
use common::rng::Rng;
use common::split_stream::{CHILD_1, CHILD_2, OTHER, PARENT};
use common::streams;
use zae_aggregator::stream::{seq_cmp, Checkpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_counters_equal_the_truth() {
    let moto = Moto::start();
    let dir = scratch("caught-up");
    let log = dir.join("poll.log");
    let table = "poll-caught-up";
    let (started_s, arn) = traffic_table(&moto, table, 7, 160).await;

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
    let (started_s, arn) = traffic_table(&moto, table, 11, 80).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_split_is_read_children_after_their_parent() {
    let moto = Moto::start();
    let proxy = FaultProxy::new(moto.port, Duration::from_secs(30));
    let (_, port) = proxy.listen().await;
    let view = proxy.split_stream();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = scratch("split");
    let log = dir.join("poll.log");
    let checkpoint = dir.join("checkpoint.json");
    let table = "poll-split";
    let (started_s, arn) = traffic_table(&moto, table, 21, 100).await;
    let saved = || std::fs::read_to_string(&checkpoint).ok().and_then(|t| Checkpoint::from_json(&t).ok());
    let args = ["--stream-arn", &arn, "--batch-size", "10", "--batching-window", "0", "--checkpoint"];
    let args = [&args[..], &[checkpoint.to_str().unwrap()]].concat();
    let via_proxy = [("AWS_ENDPOINT_URL", endpoint.as_str())];
    let mut child = command(&moto, "poll", &args, &log, &via_proxy);

    // Both shards are being read; then the parent closes at the stream's
    // current end and new traffic goes to its children.
    let until = Instant::now() + Duration::from_secs(120);
    while !saved().is_some_and(|c| c.shards.contains_key(PARENT) && c.shards.contains_key(OTHER)) {
        assert!(Instant::now() < until, "poll never read both shards: {:?}", saved());
        assert!(child.try_wait().unwrap().is_none(), "poll exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let split_at = streams::seq(whole_stream(&moto, &arn).await.last().unwrap()).to_string();
    view.split_at(&split_at);
    make_traffic(&moto, table, 22, 100).await;

    // The running poller finishes the parent and discovers the children.
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let c = saved();
        let parent_done = c.as_ref().is_some_and(|c| c.shards.get(PARENT).is_some_and(|p| p.finished));
        let children = c.as_ref().is_some_and(|c| c.shards.contains_key(CHILD_1) && c.shards.contains_key(CHILD_2));
        if parent_done && children {
            break;
        }
        assert!(Instant::now() < until, "the split was not followed: {c:?}");
        assert!(child.try_wait().unwrap().is_none(), "poll exited early");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(wait(&mut child, Duration::from_secs(60), &log), 0, "SIGTERM must end poll with 0");

    // A restart from the checkpoint reads what is left.
    let mut child = command(&moto, "poll", &[&args[..], &["--until-caught-up"]].concat(), &log, &via_proxy);
    assert_eq!(wait(&mut child, Duration::from_secs(300), &log), 0);
    let v = verdict(&moto, table, &arn, started_s).await;
    assert!(v.holds(), "{v:#?}");
    let c = saved().expect("a checkpoint");
    assert!(c.shards[PARENT].finished, "{c:?}");
    for shard in [OTHER, CHILD_1, CHILD_2] {
        assert!(c.shards.contains_key(shard), "{shard} missing from {c:?}");
    }

    // Every batch of a child came after the parent's last one, and each
    // shard's batches hold records on its side of the split.
    let batches: Vec<(String, String)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "Lambda invocation completed")
        .filter_map(|l| {
            let id = l["request_id"].as_str()?.strip_prefix("poll-")?.to_string();
            let (shard, first) = id.rsplit_once('-')?;
            Some((shard.to_string(), first.to_string()))
        })
        .collect();
    let last_parent = batches.iter().rposition(|(s, _)| s == PARENT).expect("batches of the parent");
    let first_child = batches.iter().position(|(s, _)| s == CHILD_1 || s == CHILD_2).expect("batches of the children");
    assert!(last_parent < first_child, "a child was read before its parent finished: {batches:?}");
    for (shard, first) in &batches {
        let past = seq_cmp(first, &split_at).is_gt();
        match shard.as_str() {
            PARENT => assert!(!past, "the parent handled {first}, past the split {split_at}"),
            CHILD_1 | CHILD_2 => assert!(past, "{shard} handled {first}, before the split {split_at}"),
            _ => {}
        }
    }
    eprintln!(
        "split: {} batches ({} of the parent, {} of the children), split at {split_at}",
        batches.len(),
        batches.iter().filter(|(s, _)| s == PARENT).count(),
        batches.iter().filter(|(s, _)| s == CHILD_1 || s == CHILD_2).count()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
