//! `Executor::from_env` reaches a local endpoint through the standard AWS
//! environment variables (its own test binary: it sets process environment).

mod common;

use common::moto::Moto;
use common::planner;
use zae_aggregator::executor::{Executor, ExecutorOptions, WriteResult};
use zae_planner::vector::{default_root, load};

#[tokio::test]
async fn clients_from_the_environment_reach_dynamodb_and_s3() {
    let moto = Moto::start();
    // The only test in this binary: no other thread reads the environment.
    for (name, value) in moto.aws_env() {
        std::env::set_var(name, value);
    }
    let exec = Executor::from_env(ExecutorOptions::default()).await;

    let vectors =
        [load(&default_root().join("golden-1-spec13")).unwrap(), load(&default_root().join("archive-basic")).unwrap()];
    moto.create_table("rate-limits").await;
    moto.create_bucket("audit-archive").await;
    for v in &vectors {
        let owned = common::vector_batch(v);
        let batch = owned.batch();
        let plan = planner().plan(&batch).await.unwrap().unwrap();
        let report = common::execute(&exec, &batch, &plan).await;
        assert!(report.is_success(), "{}: {report:?}", v.name);
        assert!(
            report.writes.iter().all(|w| matches!(w, WriteResult::Applied | WriteResult::ConditionIgnored)),
            "{}: {report:?}",
            v.name
        );
    }
    // Two snapshot items (the bucket item was not seeded, so its refill and
    // shard bump lost their conditions), and the object: S3 went path-style (a virtual-hosted bucket name would not resolve).
    assert_eq!(moto.list_objects("audit-archive").await.len(), 1);
    assert_eq!(moto.scan("rate-limits").await.len(), 2);
}
