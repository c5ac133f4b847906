//! `kpax versions`: per broker, the API versions it offers, the version
//! kpax uses of each, and which client features that turns on or off and
//! why.

use crate::connect::ConnectArgs;
use crate::error::{KafkaContext, Result};
use crate::output::{print_json, write_out, Table};
use clap::Args;
use kpax::broker::{client_cap, client_caps, client_range, ApiVersions};
use kpax_proto::generated::ApiKey;
use serde_json::json;

/// Flags of `kpax versions`.
#[derive(Debug, Args)]
pub struct VersionsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// A client feature and the API versions it needs.
struct Feature {
    name: &'static str,
    /// Every one of these APIs at least at this version.
    needs: &'static [(ApiKey, i16)],
}

/// The features `kpax versions` reports, with the requests they need.
const FEATURES: &[Feature] = &[
    Feature {
        name: "idempotence",
        needs: &[(ApiKey::Produce, 3), (ApiKey::InitProducerId, 0)],
    },
    Feature {
        name: "record headers",
        needs: &[(ApiKey::Produce, 3)],
    },
    Feature {
        name: "zstd",
        needs: &[(ApiKey::Produce, 7)],
    },
    Feature {
        name: "offsets by time",
        needs: &[(ApiKey::ListOffsets, 1)],
    },
    Feature {
        name: "consumer groups",
        needs: &[
            (ApiKey::FindCoordinator, 0),
            (ApiKey::JoinGroup, 0),
            (ApiKey::SyncGroup, 0),
            (ApiKey::Heartbeat, 0),
            (ApiKey::OffsetCommit, 0),
            (ApiKey::OffsetFetch, 0),
        ],
    },
    Feature {
        name: "consumer group protocol (KIP-848)",
        needs: &[(ApiKey::ConsumerGroupHeartbeat, 0)],
    },
    Feature {
        name: "share groups (KIP-932)",
        needs: &[
            (ApiKey::ShareGroupHeartbeat, 1),
            (ApiKey::ShareFetch, 1),
            (ApiKey::ShareAcknowledge, 1),
        ],
    },
    Feature {
        name: "share-group offsets",
        needs: &[
            (ApiKey::DescribeShareGroupOffsets, 0),
            (ApiKey::AlterShareGroupOffsets, 0),
            (ApiKey::DeleteShareGroupOffsets, 0),
        ],
    },
    Feature {
        name: "transactions",
        needs: &[
            (ApiKey::InitProducerId, 0),
            (ApiKey::AddPartitionsToTxn, 0),
            (ApiKey::AddOffsetsToTxn, 0),
            (ApiKey::TxnOffsetCommit, 0),
            (ApiKey::EndTxn, 0),
        ],
    },
    Feature {
        name: "fetch sessions (KIP-227)",
        needs: &[(ApiKey::Fetch, 7)],
    },
    Feature {
        name: "admin topic create",
        needs: &[(ApiKey::CreateTopics, 0)],
    },
    Feature {
        name: "admin topic delete",
        needs: &[(ApiKey::DeleteTopics, 0)],
    },
    Feature {
        name: "admin group list/describe",
        needs: &[(ApiKey::ListGroups, 0), (ApiKey::DescribeGroups, 0)],
    },
];

/// The version kpax would use of `api` with a broker offering `offered`.
fn uses(offered: &ApiVersions, api: ApiKey) -> Option<i16> {
    offered.pick(api, client_range(api))
}

/// Whether `f` is on with this broker, and why not when off.
fn check(f: &Feature, broker: &str, offered: &ApiVersions) -> (bool, String) {
    for (api, min) in f.needs {
        match (offered.range(*api), uses(offered, *api)) {
            (None, _) => return (false, format!("{broker} does not offer {}", api.name())),
            (Some((lo, hi)), None) => {
                let (ours_lo, ours_hi) = client_range(*api);
                return (
                    false,
                    format!(
                        "{broker} offers {} v{lo}-v{hi}, kpax knows v{ours_lo}-v{ours_hi}",
                        api.name()
                    ),
                );
            }
            (Some((_, hi)), Some(v)) if v < *min => {
                return (
                    false,
                    format!("{broker} offers {} v{hi}, needs v{min}", api.name()),
                )
            }
            _ => {}
        }
    }
    let using = f
        .needs
        .iter()
        .filter_map(|(api, _)| uses(offered, *api).map(|v| format!("{} v{v}", api.name())))
        .collect::<Vec<_>>()
        .join(", ");
    (true, using)
}

/// Runs `kpax versions`.
///
/// # Errors
/// Connection errors (metadata, or a broker's ApiVersions).
pub async fn run(args: VersionsArgs) -> Result<()> {
    let cluster = args.connect.cluster()?;
    let per_broker = args
        .connect
        .bounded("asking brokers for their API versions", async {
            cluster
                .refresh(Some(&[]))
                .await
                .kafka(|| "reading metadata".into())?;
            let mut brokers = cluster.brokers();
            brokers.sort_by_key(|b| b.node_id());
            let mut out = Vec::new();
            for b in brokers {
                let v = b
                    .api_versions()
                    .await
                    .kafka(|| format!("ApiVersions of broker {}", b.addr()))?;
                out.push((b.node_id(), b.addr().to_string(), v));
            }
            Ok(out)
        })
        .await?;
    if args.json {
        let v: Vec<_> = per_broker
            .iter()
            .map(|(id, addr, offered)| {
                let who = who(*id, addr);
                json!({
                    "id": id, "address": addr,
                    "apis": ApiKey::ALL.iter().filter_map(|api| {
                        let (lo, hi) = offered.range(*api)?;
                        let (klo, khi) = api.versions();
                        Some(json!({
                            "api": api.name(), "key": *api as i16,
                            "broker": [lo, hi], "kpax": [klo, khi],
                            "client_cap": client_cap(*api),
                            "uses": uses(offered, *api),
                        }))
                    }).collect::<Vec<_>>(),
                    "features": FEATURES.iter().map(|f| {
                        let (on, why) = check(f, &who, offered);
                        json!({ "feature": f.name, "on": on, "detail": why })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&json!({ "brokers": v }));
    }
    let mut out = String::new();
    for (id, addr, offered) in &per_broker {
        let who = who(*id, addr);
        out.push_str(&format!("{who} at {addr}\n"));
        let mut t = Table::new(&["API", "KEY", "BROKER", "KPAX", "USES"]);
        for api in ApiKey::ALL {
            let Some((lo, hi)) = offered.range(*api) else {
                continue;
            };
            let (klo, khi) = api.versions();
            t.row(vec![
                api.name().to_string(),
                (*api as i16).to_string(),
                format!("{lo}-{hi}"),
                format!("{klo}-{khi}"),
                uses(offered, *api).map_or("-".into(), |v| format!("v{v}")),
            ]);
        }
        out.push_str(&t.render());
        let caps: Vec<String> = client_caps()
            .filter(|(api, _, _)| offered.range(*api).is_some())
            .map(|(api, v, why)| format!("  {} at most v{v}: {why}\n", api.name()))
            .collect();
        if !caps.is_empty() {
            out.push_str("client caps (kpax sends no higher, whatever both sides know):\n");
            out.push_str(&caps.concat());
        }
        out.push_str("features:\n");
        for f in FEATURES {
            let (on, why) = check(f, &who, offered);
            if on {
                out.push_str(&format!("  {} on ({why})\n", f.name));
            } else {
                out.push_str(&format!("  {} off: {why}\n", f.name));
            }
        }
        out.push('\n');
    }
    write_out(&out)
}

fn who(id: Option<i32>, addr: &str) -> String {
    match id {
        Some(id) => format!("broker {id}"),
        None => format!("broker {addr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(name: &str) -> &'static Feature {
        FEATURES.iter().find(|f| f.name == name).unwrap()
    }

    #[test]
    fn idempotence_needs_produce_v3_and_init_producer_id() {
        let old = ApiVersions::from_ranges([(0, 0, 2), (22, 0, 1)]);
        let (on, why) = check(feature("idempotence"), "broker 2", &old);
        assert!(!on);
        assert_eq!(why, "broker 2 offers Produce v2, needs v3");
        let no_pid = ApiVersions::from_ranges([(0, 0, 9)]);
        let (on, why) = check(feature("idempotence"), "broker 1", &no_pid);
        assert!(!on);
        assert_eq!(why, "broker 1 does not offer InitProducerId");
        let new = ApiVersions::from_ranges([(0, 0, 9), (22, 0, 4)]);
        assert!(check(feature("idempotence"), "broker 1", &new).0);
    }

    #[test]
    fn zstd_needs_produce_v7() {
        let v6 = ApiVersions::from_ranges([(0, 0, 6)]);
        assert_eq!(
            check(feature("zstd"), "broker 3", &v6),
            (false, "broker 3 offers Produce v6, needs v7".to_string())
        );
        let v7 = ApiVersions::from_ranges([(0, 0, 7)]);
        assert!(check(feature("zstd"), "broker 3", &v7).0);
    }

    #[test]
    fn share_groups_need_the_share_apis_from_v1() {
        // Kafka 3.9 offers none of them; Kafka 4.0's early-access v0 is not enough.
        let none = ApiVersions::from_ranges([(0, 0, 11)]);
        assert_eq!(
            check(feature("share groups (KIP-932)"), "broker 1", &none),
            (
                false,
                "broker 1 does not offer ShareGroupHeartbeat".to_string()
            )
        );
        let v0 = ApiVersions::from_ranges([(76, 0, 0), (78, 0, 0), (79, 0, 0)]);
        assert_eq!(
            check(feature("share groups (KIP-932)"), "broker 1", &v0),
            (
                false,
                "broker 1 offers ShareGroupHeartbeat v0, needs v1".to_string()
            )
        );
        let ga = ApiVersions::from_ranges([(76, 1, 1), (78, 1, 2), (79, 1, 2)]);
        let (on, using) = check(feature("share groups (KIP-932)"), "broker 1", &ga);
        assert!(on);
        assert_eq!(
            using,
            "ShareGroupHeartbeat v1, ShareFetch v2, ShareAcknowledge v2"
        );
    }
}
