//! Property tests of the codec: encode/decode round trips and arbitrary bytes never panic.

use bytes::Bytes;
use ferrokeeper_proto::multi::{MultiOp, MultiRequest, MultiResponse, OpResult};
use ferrokeeper_proto::request::Request;
use ferrokeeper_proto::txn::{Txn, TxnRecord};
use ferrokeeper_proto::*;
use proptest::prelude::*;

fn buffer() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
}

fn acl() -> impl Strategy<Value = Acl> {
    (any::<i32>(), "[a-z]{0,8}", ".{0,12}").prop_map(|(perms, scheme, id)| Acl::new(perms, &scheme, &id))
}

fn stat() -> impl Strategy<Value = Stat> {
    (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
        czxid: l[0],
        mzxid: l[1],
        ctime: l[2],
        mtime: l[3],
        version: i[0],
        cversion: i[1],
        aversion: i[2],
        ephemeral_owner: l[4],
        data_length: i[3],
        num_children: i[4],
        pzxid: l[5],
    })
}

fn create() -> impl Strategy<Value = CreateRequest> {
    (".{0,20}", buffer(), proptest::collection::vec(acl(), 0..3), any::<i32>())
        .prop_map(|(path, data, acl, flags)| CreateRequest { path, data, acl, flags })
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        (prop_oneof![Just(1), Just(15), Just(19)], create())
            .prop_map(|(op, request)| MultiOp::Create { op, request }),
        (".{0,10}", any::<i32>())
            .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (".{0,10}", buffer(), any::<i32>())
            .prop_map(|(path, data, version)| MultiOp::SetData(SetDataRequest { path, data, version })),
        (".{0,10}", any::<i32>())
            .prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
        (".{0,10}", any::<bool>()).prop_map(|(path, watch)| MultiOp::GetData(GetDataRequest { path, watch })),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create().prop_map(Request::Create),
        create().prop_map(Request::Create2),
        (create(), any::<i64>()).prop_map(|(c, ttl)| Request::CreateTtl(CreateTtlRequest {
            path: c.path,
            data: c.data,
            acl: c.acl,
            flags: c.flags,
            ttl
        })),
        (".{0,10}", any::<bool>()).prop_map(|(path, watch)| Request::Exists(ExistsRequest { path, watch })),
        (".{0,10}", proptest::collection::vec(acl(), 0..3), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        proptest::collection::vec(multi_op(), 0..5).prop_map(|ops| Request::Multi(MultiRequest { ops })),
        (any::<i64>(), proptest::collection::vec(".{0,6}", 0..3)).prop_map(|(z, paths)| {
            Request::SetWatches2(SetWatches2 {
                relative_zxid: z,
                data_watches: paths.clone(),
                exist_watches: paths.clone(),
                child_watches: paths.clone(),
                persistent_watches: paths.clone(),
                persistent_recursive_watches: paths,
            })
        }),
        Just(Request::Ping),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

fn op_result() -> impl Strategy<Value = OpResult> {
    prop_oneof![
        ".{0,10}".prop_map(|path| OpResult::Create { path }),
        (".{0,10}", stat()).prop_map(|(path, stat)| OpResult::Create2 { path, stat }),
        Just(OpResult::Delete),
        Just(OpResult::Check),
        stat().prop_map(|stat| OpResult::SetData { stat }),
        proptest::collection::vec(".{0,6}", 0..4).prop_map(|children| OpResult::GetChildren { children }),
        (buffer(), stat()).prop_map(|(data, stat)| OpResult::GetData { data, stat }),
        any::<i32>().prop_map(|err| OpResult::Error { err }),
    ]
}

/// PathUtils.validatePath written the plain way (index arithmetic over a char vector), to check
/// the one-pass version against.
fn validate_reference(path: &str) -> bool {
    if path.is_empty() || !path.starts_with('/') {
        return false;
    }
    if path.len() == 1 {
        return true;
    }
    if path.ends_with('/') {
        return false;
    }
    let chars: Vec<char> = path.chars().collect();
    for i in 1..chars.len() {
        let (c, last) = (chars[i], chars[i - 1]);
        let next_is_end = i + 1 == chars.len() || chars[i + 1] == '/';
        let bad_char = |c: char| {
            let c = c as u32;
            (0x01..=0x1f).contains(&c)
                || (0x7f..=0x9f).contains(&c)
                || (0xd800..=0xf8ff).contains(&c)
                || c >= 0xfff0
        };
        if c == '\0'
            || (c == '/' && last == '/')
            || (c == '.' && last == '.' && i >= 2 && chars[i - 2] == '/' && next_is_end)
            || (c == '.' && last == '/' && next_is_end)
            || bad_char(c)
        {
            return false;
        }
    }
    true
}

proptest! {
    #[test]
    fn path_validation_matches_the_reference(path in "[/a.\\x00\\x01\\u{7f}é]{0,8}") {
        prop_assert_eq!(ferrokeeper_proto::path::validate(&path).is_ok(), validate_reference(&path), "{:?}", path);
    }

    #[test]
    fn requests_round_trip(request in request()) {
        let mut body = Vec::new();
        request.write_body(&mut body);
        prop_assert_eq!(Request::decode(request.op(), &body), Ok(request));
    }

    #[test]
    fn multi_responses_round_trip(results in proptest::collection::vec(op_result(), 0..6)) {
        let response = MultiResponse { results };
        prop_assert_eq!(MultiResponse::decode(&response.encode_to_vec()), Ok(response));
    }

    #[test]
    fn connect_round_trips(z in any::<i64>(), t in any::<i32>(), s in any::<i64>(), p in buffer(), ro in proptest::option::of(any::<bool>())) {
        let request = ConnectRequest { protocol_version: 0, last_zxid_seen: z, timeout: t, session_id: s, passwd: p, read_only: ro };
        prop_assert_eq!(ConnectRequest::decode(&request.encode_to_vec()), Ok(request));
    }

    #[test]
    fn txns_round_trip(c in create(), e in any::<bool>(), v in any::<i32>(), z in any::<i64>()) {
        let txn = Txn::Multi(vec![
            Txn::Create { op: 1, txn: txn::CreateTxn { path: c.path.clone(), data: c.data, acl: c.acl, ephemeral: e, parent_c_version: v } },
            Txn::Delete { op: 2, txn: txn::DeleteTxn { path: c.path } },
            Txn::Error(txn::ErrorTxn { err: v }),
        ]);
        let record = TxnRecord { header: txn::TxnHeader { client_id: z, cxid: v, zxid: z, time: z, txn_type: 14 }, txn };
        prop_assert_eq!(TxnRecord::decode(&record.encode_to_vec()), Ok(record));
    }

    #[test]
    fn arbitrary_bytes_never_panic(op in -12i32..110, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Request::decode(op, &bytes);
        let _ = MultiResponse::decode(&bytes);
        let _ = ConnectRequest::decode(&bytes);
        let _ = TxnRecord::decode(&bytes);
        let _ = frame::check(&bytes, 1 << 20);
    }

    #[test]
    fn hostile_lengths_are_refused(len in any::<i32>()) {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        let decoded = Vec::<String>::decode(&bytes);
        if !(-1..=2).contains(&len) {
            prop_assert!(decoded.is_err());
        }
    }
}
