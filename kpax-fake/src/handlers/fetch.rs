//! Reading a partition at its leader: Fetch (a long poll on new records,
//! inside a fetch session, read_committed stopping at the last stable
//! offset) and ListOffsets (earliest, latest, max timestamp, by
//! timestamp).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kpax_proto::generated::{fetch::*, list_offsets::*};
use kpax_proto::generated::{
    ErrorCode, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};

use crate::context::{leader_check, Context};

/// One pass over a Fetch request: the response and how many record bytes
/// it carries, and whether it holds an error (answered at once).
fn fetch_once(ctx: &Context<'_>, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = FetchResponse::default();
    let mut total = 0usize;
    let mut any_error = false;
    let max_bytes = if v >= 3 && req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    for t in &req.topics {
        let mut rt = FetchResponseResponse::default();
        let name = if v >= 13 {
            rt.topic_id = t.topic_id;
            s.topic_name_by_id(&t.topic_id)
        } else {
            rt.topic = t.topic.clone();
            Some(t.topic.to_string())
        };
        for fp in &t.partitions {
            let mut rp = FetchResponsePartition::default();
            rp.partition_index = fp.partition;
            rp.high_watermark = -1;
            if v >= 4 {
                rp.last_stable_offset = -1;
            }
            if v >= 5 {
                rp.log_start_offset = -1;
            }
            if v >= 11 {
                rp.preferred_read_replica = -1;
            }
            let result = match (&name, ctx.injected) {
                (_, Some(e)) => Err(e),
                (None, _) => Err(ErrorCode::UNKNOWN_TOPIC_ID.0),
                (Some(name), None) => leader_check(&s, ctx.node, name, fp.partition),
            };
            let result = result.and_then(|()| {
                let name = name.as_deref().expect("checked");
                let p = &s.topics[name].partitions[fp.partition as usize];
                let log = &p.log;
                rp.high_watermark = log.high_watermark();
                let lso =
                    super::txn::last_stable_offset(&s, name, fp.partition, log.high_watermark());
                if v >= 4 {
                    rp.last_stable_offset = lso;
                }
                if v >= 5 {
                    rp.log_start_offset = log.log_start_offset();
                }
                if fp.fetch_offset < log.log_start_offset()
                    || fp.fetch_offset > log.high_watermark()
                {
                    return Err(ErrorCode::OFFSET_OUT_OF_RANGE.0);
                }
                // (total passes max_bytes when a first batch is larger:
                // later partitions then get nothing.)
                let limit =
                    (fp.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
                let mut data = log.read(fp.fetch_offset, limit, total == 0);
                if v >= 4 && req.isolation_level == 1 {
                    data = super::txn::below(data, lso);
                    rp.aborted_transactions = Some(super::txn::aborted_between(
                        &s,
                        name,
                        fp.partition,
                        fp.fetch_offset,
                        lso,
                    ));
                }
                total += data.len();
                rp.records = Some(data);
                Ok(())
            });
            if let Err(e) = result {
                any_error = true;
                rp.error_code = ErrorCode(e);
                rp.records = Some(Bytes::new());
                if v >= 12 && e == ErrorCode::NOT_LEADER_OR_FOLLOWER.0 {
                    if let Some(p) = name
                        .as_deref()
                        .and_then(|n| s.topics.get(n))
                        .and_then(|t| t.partitions.get(fp.partition as usize))
                    {
                        rp.current_leader.leader_id = p.leader;
                        rp.current_leader.leader_epoch = p.leader_epoch;
                    }
                }
            }
            rt.partitions.push(rp);
        }
        r.responses.push(rt);
    }
    (r, total, any_error)
}

pub(crate) async fn fetch(ctx: &Context<'_>, req: FetchRequest) -> FetchResponse {
    let (req, answer) = match super::fetch_session::open(ctx, req) {
        super::fetch_session::Opened::Answer(r) => return r,
        super::fetch_session::Opened::Fetch(req, answer) => (req, answer),
    };
    let wait = Duration::from_millis(req.max_wait_ms.clamp(0, 60_000) as u64);
    let deadline = Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    loop {
        let notified = ctx.shared.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (r, total, error) = fetch_once(ctx, &req);
        let now = Instant::now();
        if error || total >= min_bytes.max(1) || now >= deadline {
            return super::fetch_session::close(ctx, answer, r);
        }
        let _ = tokio::time::timeout(deadline - now, notified).await;
    }
}

pub(crate) fn list_offsets(ctx: &Context<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let v = ctx.version;
    let s = ctx.shared.lock();
    let mut r = ListOffsetsResponse::default();
    for t in req.topics {
        let mut rt = ListOffsetsResponseTopic::default();
        rt.name = t.name.clone();
        for lp in t.partitions {
            let mut rp = ListOffsetsResponsePartition::default();
            rp.partition_index = lp.partition_index;
            let result = match ctx.injected {
                Some(e) => Err(e),
                None => leader_check(&s, ctx.node, &t.name, lp.partition_index),
            };
            let found = result.map(|()| {
                let p = &s.topics[t.name.as_str()].partitions[lp.partition_index as usize];
                let log = &p.log;
                let found = match lp.timestamp {
                    // read_committed (v2+) ends at the last stable offset.
                    -1 if v >= 2 && req.isolation_level == 1 => Some((
                        super::txn::last_stable_offset(
                            &s,
                            &t.name,
                            lp.partition_index,
                            log.high_watermark(),
                        ),
                        -1,
                    )),
                    -1 => Some((log.high_watermark(), -1)),
                    -2 => Some((log.log_start_offset(), -1)),
                    -3 => log.max_timestamp_offset(),
                    ts if ts >= 0 => log.offset_for_timestamp(ts),
                    _ => None,
                };
                (found, p.leader_epoch)
            });
            match found {
                Err(e) => {
                    rp.error_code = ErrorCode(e);
                    if v >= 1 {
                        rp.offset = -1;
                        rp.timestamp = -1;
                    }
                    if v >= 4 {
                        rp.leader_epoch = -1;
                    }
                }
                Ok((found, epoch)) => {
                    let (offset, ts) = found.unwrap_or((-1, -1));
                    if v == 0 {
                        if offset >= 0 {
                            rp.old_style_offsets = vec![offset];
                        }
                    } else {
                        rp.offset = offset;
                        rp.timestamp = ts;
                    }
                    if v >= 4 {
                        rp.leader_epoch = epoch;
                    }
                }
            }
            rt.partitions.push(rp);
        }
        r.topics.push(rt);
    }
    r
}
