//! The queues' round robin, and which thread runs a job: a fake backend stands in for the
//! TPM (the real one is exercised through tpmd in tests/).

use std::sync::atomic::AtomicUsize;
use std::thread::ThreadId;

use tpmd_api::dbus::{Counters, Info};
use tpmd_api::policy::PcrBank;

use super::*;
use crate::backend::{DaState, DecryptRequest, Family, KeyBinding, PcrValue, SignRequest};

fn job() -> Waiting {
    Waiting {
        job: Box::new(|_| {}),
        queued_at: 0,
    }
}

fn queue(queues: &mut Queues, uid: u32, n: usize) {
    for _ in 0..n {
        let q = queues.by_uid.entry(uid).or_default();
        if q.is_empty() {
            queues.turns.push_back(uid);
        }
        q.push_back(job());
    }
}

#[test]
fn uids_take_turns_whatever_their_backlog() {
    let mut queues = Queues::default();
    queue(&mut queues, 1000, 50);
    queue(&mut queues, 1001, 1);
    queue(&mut queues, 1002, 2);
    let order: Vec<u32> = std::iter::from_fn(|| queues.next().map(|(uid, _)| uid))
        .take(6)
        .collect();
    assert_eq!(order, [1000, 1001, 1002, 1000, 1002, 1000]);
    assert_eq!(queues.waiting(), 47);
    assert_eq!(queues.turns, [1000]);
}

#[test]
fn a_new_uid_waits_for_at_most_one_job_of_each_uid_with_work() {
    let mut queues = Queues::default();
    queue(&mut queues, 1000, 1000);
    queue(&mut queues, 1002, 1000);
    queues.next();
    queue(&mut queues, 1001, 1);
    let ahead = std::iter::from_fn(|| queues.next().map(|(uid, _)| uid))
        .take_while(|uid| *uid != 1001)
        .count();
    assert_eq!(ahead, 2);
}

/// Answers nothing but counts its idle calls.
#[derive(Default)]
struct Fake {
    idle_calls: Arc<AtomicUsize>,
}

fn nothing<T>() -> TpmResult<T> {
    Err(TpmError::Unsupported("a fake TPM".into()))
}

impl Backend for Fake {
    fn family(&self) -> Family {
        Family::Tpm2
    }
    fn info(&mut self) -> TpmResult<Info> {
        nothing()
    }
    fn counters(&self) -> Counters {
        Counters::default()
    }
    fn count_request(&mut self) {}
    fn count_failure(&mut self) {}
    fn parent_public(&mut self, _: u32) -> TpmResult<Vec<u8>> {
        nothing()
    }
    fn import(&mut self, _: &[u8]) -> TpmResult<String> {
        nothing()
    }
    fn generate(&mut self, _: &str, _: &[u8], _: u32, _: &KeyBinding) -> TpmResult<String> {
        nothing()
    }
    fn read_pcrs(&mut self, _: &[PcrBank]) -> TpmResult<Vec<PcrValue>> {
        nothing()
    }
    fn sign(&mut self, _: &[u8], _: &[u8], _: &SignRequest<'_>) -> TpmResult<Vec<u8>> {
        nothing()
    }
    fn decrypt(&mut self, _: &[u8], _: &[u8], _: &DecryptRequest<'_>) -> TpmResult<Vec<u8>> {
        nothing()
    }
    fn random(&mut self, _: usize) -> TpmResult<Vec<u8>> {
        nothing()
    }
    fn change_auth(&mut self, _: &[u8], _: &[u8], _: &[u8]) -> TpmResult<String> {
        nothing()
    }
    fn create_srk(&mut self) -> TpmResult<bool> {
        nothing()
    }
    fn reset_lockout(&mut self, _: &[u8]) -> TpmResult<()> {
        nothing()
    }
    fn da_state(&mut self) -> TpmResult<DaState> {
        nothing()
    }
    fn key_counts_auth_failures(&mut self, _: &[u8]) -> TpmResult<bool> {
        nothing()
    }
    fn lock_nv(&mut self) -> TpmResult<bool> {
        nothing()
    }
    fn flush_all(&mut self) {}
    fn idle(&mut self) {
        self.idle_calls.fetch_add(1, Ordering::SeqCst);
    }
}

fn start_fake() -> (TpmWorker, Arc<AtomicUsize>) {
    let idle_calls = Arc::new(AtomicUsize::new(0));
    let fake = Fake {
        idle_calls: idle_calls.clone(),
    };
    let worker = TpmWorker::start(move || Ok(Box::new(fake) as Box<dyn Backend>), 8).unwrap();
    (worker, idle_calls)
}

fn here() -> TpmResult<ThreadId> {
    Ok(thread::current().id())
}

/// Waits (a hang detector, not a timing check) until `count` reaches `want`.
async fn reaches(count: &AtomicUsize, want: usize) {
    for _ in 0..1000 {
        if count.load(Ordering::SeqCst) >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "stayed at {} instead of {want}",
        count.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_lone_short_job_runs_on_the_callers_thread_others_on_the_tpm_thread() {
    let (worker, _) = start_fake();
    let caller = thread::current().id();
    assert_eq!(worker.run_short(1000, |_| here()).await.unwrap(), caller);
    assert_ne!(worker.run(1000, |_| here()).await.unwrap(), caller);
}

#[tokio::test]
async fn a_short_job_that_overlaps_another_request_waits_in_the_queue() {
    let (worker, _) = start_fake();
    let caller = thread::current().id();
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let first = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .run(1000, move |_| {
                    let _ = started_tx.send(());
                    let _ = go_rx.recv();
                    here()
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    started_rx.recv().unwrap();
    let (second, ()) = tokio::join!(worker.run_short(1001, |_| here()), async {
        // run_short has counted itself and yielded once by now.
        tokio::task::yield_now().await;
        go_tx.send(()).unwrap();
    });
    let tpm_thread = first.await.unwrap().unwrap();
    assert_ne!(tpm_thread, caller);
    assert_eq!(second.unwrap(), tpm_thread);
}

#[tokio::test]
async fn the_tpm_thread_goes_idle_after_jobs_on_either_thread() {
    let (worker, idle_calls) = start_fake();
    // After opening the TPM.
    reaches(&idle_calls, 1).await;
    worker.run_short(1000, |_| here()).await.unwrap();
    reaches(&idle_calls, 2).await;
    worker.run(1000, |_| here()).await.unwrap();
    reaches(&idle_calls, 3).await;
}
