//! Produce at a partition's leader: the batches appended to the log (the
//! idempotent producers' sequence checks are the log's), a transactional
//! batch checked against its open transaction, waiting fetches woken; no
//! answer for acks=0.

use kpax_proto::generated::produce::*;
use kpax_proto::generated::{ErrorCode, ProduceRequest, ProduceResponse};

use crate::context::{leader_check, Context};

pub(crate) fn produce(ctx: &Context<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let v = ctx.version;
    let mut appended = false;
    let mut r = ProduceResponse::default();
    {
        let mut s = ctx.shared.lock();
        for td in req.topic_data {
            let mut rt = ProduceResponseResponse::default();
            rt.name = td.name.clone();
            for pd in td.partition_data {
                let mut rp = ProduceResponsePartitionResponse::default();
                rp.index = pd.index;
                rp.base_offset = -1;
                let outcome = if let Some(e) = ctx.injected {
                    Err(e)
                } else if !matches!(req.acks, -1..=1) {
                    Err(ErrorCode::INVALID_REQUIRED_ACKS.0)
                } else {
                    leader_check(&s, ctx.node, &td.name, pd.index).and_then(|()| {
                        let records = pd.records.clone().unwrap_or_default();
                        let txn = super::txn::check_produce(
                            &s,
                            req.transactional_id.as_deref(),
                            &td.name,
                            pd.index,
                            &records,
                        )?;
                        let p = &mut s
                            .topics
                            .get_mut(td.name.as_str())
                            .expect("checked")
                            .partitions[pd.index as usize];
                        let epoch = p.leader_epoch;
                        let out = p
                            .log
                            .append(&records, epoch)
                            .map(|a| (a, p.log.log_start_offset()))
                            .map_err(|e| e.0)?;
                        if let (Some(pid), false) = (txn, out.0.duplicate) {
                            super::txn::appended(
                                &mut s,
                                &td.name,
                                pd.index,
                                pid,
                                out.0.base_offset,
                            );
                        }
                        Ok(out)
                    })
                };
                match outcome {
                    Ok((a, start)) => {
                        appended |= !a.duplicate;
                        rp.base_offset = a.base_offset;
                        if v >= 5 {
                            rp.log_start_offset = start;
                        }
                    }
                    Err(e) => {
                        rp.error_code = ErrorCode(e);
                        if v >= 10 && e == ErrorCode::NOT_LEADER_OR_FOLLOWER.0 {
                            if let Some(p) = s
                                .topics
                                .get(td.name.as_str())
                                .and_then(|t| t.partitions.get(pd.index as usize))
                            {
                                rp.current_leader.leader_id = p.leader;
                                rp.current_leader.leader_epoch = p.leader_epoch;
                            }
                        }
                    }
                }
                rt.partition_responses.push(rp);
            }
            r.responses.push(rt);
        }
    }
    if appended {
        ctx.shared.data_arrived.notify_waiters();
    }
    (req.acks != 0).then_some(r)
}
