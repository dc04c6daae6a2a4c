//! The exporter's compact values form: no input panics; whatever reads holds only catalogue
//! metrics, within the value limit, and reads back the same after writing it again.
#![no_main]

use kubemind::exporter_page::ExporterPage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(page) = ExporterPage::from_values_json(body, 1_000) {
        let held = page.node_values.len() + page.pods.values().map(|v| v.len()).sum::<usize>();
        assert!(held <= 1_000);
        let again = ExporterPage::from_values_json(page.to_values_json().as_bytes(), 1_000)
            .expect("a written page reads");
        assert_eq!(again.pods, page.pods);
        assert_eq!(again.node_values, page.node_values);
        assert_eq!(again.node, page.node);
    }
});
