//! docs/org.tpmd.Daemon1.xml is what the running daemon says about itself. Regenerate it
//! with `TPMD_WRITE_DOCS=1 cargo test -p tpmd-tests --test introspection`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tpmd_tests::TestEnv;

fn interface_block(xml: &str) -> Option<String> {
    let start = xml.find(r#"<interface name="org.tpmd.Daemon1">"#)?;
    let end = start + xml[start..].find("</interface>")? + "</interface>".len();
    Some(xml[start..end].to_string())
}

#[tokio::test]
async fn the_documented_interface_matches_the_daemon() {
    let env = TestEnv::start().await;
    let conn = env.bus.connect().await.unwrap();
    let introspectable = zbus::fdo::IntrospectableProxy::builder(&conn)
        .destination(tpmd_api::dbus::BUS_NAME)
        .path(tpmd_api::dbus::OBJECT_PATH)
        .build()
        .await
        .unwrap();
    let live = interface_block(&introspectable.introspect().await.unwrap()).unwrap();
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/org.tpmd.Daemon1.xml");
    let header = "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node name=\"/org/tpmd/Daemon1\">\n";
    if std::env::var_os("TPMD_WRITE_DOCS").is_some() {
        std::fs::write(&doc_path, format!("{header}{live}\n</node>\n")).unwrap();
    }
    let documented = std::fs::read_to_string(&doc_path).unwrap();
    let documented = interface_block(&documented).unwrap();
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        squash(&documented),
        squash(&live),
        "docs/org.tpmd.Daemon1.xml is out of date; regenerate it (see this file's header)"
    );
}
