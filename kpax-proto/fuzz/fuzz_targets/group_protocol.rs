//! The consumer protocol's subscription and assignment codec
//! (`kpax_proto::consumer_protocol`), which reads what other group members
//! (Java, librdkafka, anyone) wrote: never a panic, never an allocation
//! sized by an untrusted count, and what decodes encodes (strings read
//! through an INT16 prefix always fit one) to something that decodes to
//! the same topics, owned partitions and user data.
#![no_main]

use bytes::Bytes;
use kpax_proto::consumer_protocol::{Assignment, Subscription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    if let Ok(s) = Subscription::decode(input.clone()) {
        let bytes = s.encode().expect("a decoded subscription encodes");
        let again = Subscription::decode(bytes).expect("a subscription kpax wrote");
        assert_eq!(again.topics, s.topics);
        assert_eq!(again.user_data, s.user_data);
        assert_eq!(again.owned_partitions, s.owned_partitions);
    }
    if let Ok(a) = Assignment::decode(input) {
        let bytes = a.encode().expect("a decoded assignment encodes");
        let again = Assignment::decode(bytes).expect("an assignment kpax wrote");
        assert_eq!(again.partitions, a.partitions);
        assert_eq!(again.user_data, a.user_data);
    }
});
