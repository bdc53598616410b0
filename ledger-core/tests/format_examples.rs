//! The worked examples of `docs/ledger-format.md`, checked here so the
//! document cannot drift from the code. The Merkle values were computed with
//! Python's `hashlib` from the format description alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ledger_core::TxHash;
use ledger_core::merkle::{MerkleTree, leaf_hash, node_hash, verify_inclusion};

fn h(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

#[test]
fn merkle_example_of_the_format_document() {
    let d: Vec<TxHash> = [
        "1355dbc2896d987394fe6d744c2d54cc6b9b6023e0b519bb9a21d2032961a857",
        "613603ad7a340d7c1d434752a6b1b795ede04a4813164a9429a86730e1463885",
        "5f42bbbb7d9e3d0f17c4fe9709b82b13fe286986fbc7c5dc0c7ed8df83ebb83b",
    ]
    .map(|t| TxHash::from_bytes(h(t)))
    .to_vec();
    let leaves = [
        "5e05a376541dd27e3f146ad59c83495a2459752b079d6716cc5c7f3b3d712a01",
        "a7b7c4adf4ed7073a8cbb339f90095a40cbcc8b3d402bd7374ed1fbecd2dbb92",
        "6aa205e69d0c97316fd59dfef2355899d9f25c5975a6dde4231fae141a16f943",
    ];
    for (digest, leaf) in d.iter().zip(leaves) {
        assert_eq!(leaf_hash(digest), h(leaf));
    }
    let n01 = h("cbf55b169363783d240221adc233582b6a49b8d4ec24209810cc0b67aa5e4306");
    assert_eq!(node_hash(&h(leaves[0]), &h(leaves[1])), n01);
    let tree = MerkleTree::new(&d);
    let root = h("95d82335675ea727ca5261ace191bb93e53655556c6e992bbc7c1deb1c4afe88");
    assert_eq!(tree.root().as_bytes(), &root);
    assert_eq!(tree.path(2).unwrap(), vec![n01]);
    assert_eq!(tree.path(0).unwrap(), vec![h(leaves[1]), h(leaves[2])]);
    assert!(verify_inclusion(&d[2], 2, 3, &[n01], &tree.root()));
    // The empty block's root is SHA-256 of nothing.
    assert_eq!(
        hex::encode(MerkleTree::new(&[]).root().as_bytes()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn transfer_example_of_the_format_document_is_the_vector() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/ledger-format.md"
    ))
    .unwrap();
    let vectors: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/eip712.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let vector = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "transfer-chain1-nonce0")
        .unwrap();
    for field in [
        "privateKey",
        "address",
        "domainSeparator",
        "structHash",
        "digest",
        "signature",
    ] {
        let value = vector[field].as_str().unwrap();
        assert!(
            doc.contains(value),
            "docs/ledger-format.md lacks the vector's {field} {value}"
        );
    }
    // The message the example signs, written from the vector's typed data:
    // an edit to any field of the doc's line (or of the vector) fails here.
    let message = &vector["typedData"]["message"];
    let text = |field: &str| message[field].as_str().unwrap().to_string();
    let line = format!(
        "message    {}{{from, nonce: {}, asset: \"{}\", to: {}, amount: {}}}, chainId {}",
        vector["typedData"]["primaryType"].as_str().unwrap(),
        text("nonce"),
        text("asset"),
        text("to"),
        text("amount"),
        vector["typedData"]["domain"]["chainId"].as_str().unwrap(),
    );
    assert!(
        doc.lines().any(|l| l == line),
        "docs/ledger-format.md lacks the example's message line {line:?}"
    );
    assert!(
        doc.lines()
            .any(|l| l == format!("from       {}", text("from"))),
        "docs/ledger-format.md's example names another sender than the vector's"
    );
}
