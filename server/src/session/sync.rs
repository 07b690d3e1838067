//! Sync searches (RFC 4533) on a connection: the refresh on a blocking thread once a search
//! slot is free, then in refreshAndPersist mode each commit's changes until the consumer
//! abandons the search or goes away (`ops::syncprov` decides what to send).

use super::*;
use ldap3_proto::proto::LdapIntermediateResponse;

impl Session {
    /// Runs a sync search (RFC 4533): the refresh on a blocking thread once a search slot is
    /// free, then, in refreshAndPersist mode, each commit's changes until the consumer
    /// abandons the search or goes away.
    pub(super) fn spawn_sync(&mut self, msgid: i32, req: LdapSearchRequest, sync: SyncRequest) {
        let flag = Arc::new(AtomicBool::new(false));
        self.running.insert(msgid, flag.clone());
        let dir = self.dir.clone();
        let who = self.who.clone();
        let tx = self.tx.clone();
        // Subscribed before the refresh's snapshot is taken: no commit falls in between.
        let commits = self.dir.commits.subscribe();
        let span = tracing::info_span!("sync", msgid, base = %req.base, persist = sync.persist);
        self.dir.background.spawn(
            async move {
                let finished = tx.clone();
                run_sync(dir, who, msgid, req, sync, flag, tx, commits).await;
                let _ = finished.send(Outgoing::Finished(msgid)).await;
            }
            .instrument(span),
        );
    }
}

/// How often a persistent sync search looks at its abandon flag while no commit comes.
const SYNC_IDLE_CHECK: Duration = Duration::from_millis(500);

#[allow(clippy::too_many_arguments)]
async fn run_sync(
    dir: Arc<Directory>,
    who: Identity,
    msgid: i32,
    req: LdapSearchRequest,
    sync: SyncRequest,
    flag: Arc<AtomicBool>,
    tx: mpsc::Sender<Outgoing>,
    mut commits: watch::Receiver<u64>,
) {
    let msg = |op: LdapOp, ctrl: Vec<LdapControl>| Outgoing::Msg(LdapMsg { msgid, op, ctrl });
    let search =
        match ops::syncprov::SyncSearch::new(&dir, &who, &req, sync.cookie.as_deref(), sync.reload)
        {
            Ok(s) => Arc::new(s),
            Err(e) => {
                let _ = tx
                    .send(msg(LdapOp::SearchResultDone(ldap_result(&e)), Vec::new()))
                    .await;
                return;
            }
        };
    let Ok(slot) = dir.search_slots.clone().acquire_owned().await else {
        return;
    };
    let refresh = {
        let (dir, search, flag, tx) = (dir.clone(), search.clone(), flag.clone(), tx.clone());
        tokio::task::spawn_blocking(move || {
            let mut emit = |(op, ctrl): ops::syncprov::SyncMsg| {
                tx.blocking_send(Outgoing::Msg(LdapMsg { msgid, op, ctrl }))
                    .map_err(|_| Stopped)
            };
            search.refresh(&dir, &flag, &mut emit)
        })
        .await
    };
    drop(slot);
    let refreshed = match refresh {
        Ok(Ok(Ok(r))) => r,
        Ok(Ok(Err(e))) => return fail(&dir, &tx, msgid, &e).await,
        Ok(Err(Stopped)) => return,
        Err(e) => return fail(&dir, &tx, msgid, &OpError::Internal(e.to_string())).await,
    };
    if !sync.persist {
        let done = LdapControl::SyncDone {
            cookie: refreshed.cookie,
            refresh_deletes: refreshed.deletes,
        };
        let _ = tx
            .send(msg(
                LdapOp::SearchResultDone(crate::error::success()),
                vec![done],
            ))
            .await;
        return;
    }
    let end = if refreshed.deletes {
        LdapIntermediateResponse::SyncInfoRefreshDelete {
            cookie: refreshed.cookie,
            done: true,
        }
    } else {
        LdapIntermediateResponse::SyncInfoRefreshPresent {
            cookie: refreshed.cookie,
            done: true,
        }
    };
    if tx
        .send(msg(LdapOp::IntermediateResponse(end), Vec::new()))
        .await
        .is_err()
    {
        return;
    }
    debug!("refresh done; persisting");
    let _counted = dir.metrics.sync_consumer();
    let mut next = refreshed.next_seq;
    loop {
        if flag.load(Ordering::Relaxed) {
            debug!("sync search abandoned");
            return;
        }
        match tokio::time::timeout(SYNC_IDLE_CHECK, commits.changed()).await {
            Ok(Ok(())) | Err(_) => {}
            // The directory is closing.
            Ok(Err(_)) => return,
        }
        if *commits.borrow_and_update() < next {
            continue;
        }
        let batch = {
            let (dir, search, flag, tx) = (dir.clone(), search.clone(), flag.clone(), tx.clone());
            tokio::task::spawn_blocking(move || {
                let mut emit = |(op, ctrl): ops::syncprov::SyncMsg| {
                    if flag.load(Ordering::Relaxed) {
                        return Err(Stopped);
                    }
                    tx.blocking_send(Outgoing::Msg(LdapMsg { msgid, op, ctrl }))
                        .map_err(|_| Stopped)
                };
                let r = search.changes(&dir, &mut next, &mut emit);
                (r, next)
            })
            .await
        };
        match batch {
            Ok((Ok(Ok(())), n)) => next = n,
            Ok((Ok(Err(e)), _)) => {
                info!(error = %e, "sync search ended");
                return fail(&dir, &tx, msgid, &e).await;
            }
            Ok((Err(Stopped), _)) => return,
            Err(e) => return fail(&dir, &tx, msgid, &OpError::Internal(e.to_string())).await,
        }
    }
}

/// Ends a sync search with the result for `e` (a store failure is the directory's too).
async fn fail(dir: &Directory, tx: &mpsc::Sender<Outgoing>, msgid: i32, e: &OpError) {
    match e {
        OpError::Store(inner) => dir.store_failed("sync search", inner),
        OpError::Internal(detail) => tracing::error!(detail, "sync search task failed"),
        _ => {}
    }
    let done = LdapMsg {
        msgid,
        op: LdapOp::SearchResultDone(ldap_result(e)),
        ctrl: Vec::new(),
    };
    let _ = tx.send(Outgoing::Msg(done)).await;
}
