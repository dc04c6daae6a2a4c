//! The demo's story as one picture (`kubemind demo --svg FILE`): replicas over time above,
//! queue time over time below, one line per scenario, drawn with `plotters` into SVG. Takes
//! the finished [`Summary`]; draws nothing else.

use plotters::prelude::*;

use super::report::{ScenarioSummary, Summary};
use super::scenario::SYNC_SECONDS;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 640;

/// A colour per scenario, in the order they ran.
fn colour(index: usize) -> RGBColor {
    [
        RGBColor(160, 160, 160),
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
    ]
    .get(index)
    .copied()
    .unwrap_or(BLACK)
}

/// Earlier scenarios are drawn wider, so a later line lying on one leaves it visible.
fn line_width(index: usize) -> u32 {
    [8, 4, 2].get(index).copied().unwrap_or(2)
}

fn label(scenario: &ScenarioSummary) -> String {
    format!(
        "{} — {}, {}",
        scenario.name, scenario.scaler, scenario.balancing
    )
}

fn minutes(second: u64) -> f64 {
    second as f64 / 60.0
}

/// The SVG text of the picture.
pub fn svg(summary: &Summary) -> Result<String, DrawingAreaErrorKind<std::io::Error>> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let hpas = match summary.scenarios.len() {
            1 => "one HPA".to_string(),
            2 => "two HPAs".to_string(),
            3 => "three HPAs".to_string(),
            n => format!("{n} HPAs"),
        };
        let root = root.titled(
            &format!("kubemind demo: one gRPC client, {hpas}"),
            ("sans-serif", 22),
        )?;
        let (top, bottom) = root.split_vertically(HEIGHT / 2 - 20);
        let end = minutes(summary.duration_seconds);
        let most_replicas = summary
            .scenarios
            .iter()
            .map(|s| s.replicas_max)
            .max()
            .unwrap_or(1)
            + 1;

        let mut replicas = ChartBuilder::on(&top)
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .caption("replicas", ("sans-serif", 16))
            .build_cartesian_2d(0.0..end, 0..most_replicas)?;
        replicas
            .configure_mesh()
            .x_desc("minutes")
            .y_desc("pods")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (index, scenario) in summary.scenarios.iter().enumerate() {
            let style = colour(index).stroke_width(line_width(index));
            // a step line: the count holds until the next sync changes it
            let mut points = Vec::new();
            for pair in scenario.replicas.windows(2) {
                points.push((minutes(pair[0].0), pair[0].1));
                points.push((minutes(pair[1].0), pair[0].1));
            }
            if let Some(last) = scenario.replicas.last() {
                points.push((minutes(last.0), last.1));
                points.push((end, last.1));
            }
            replicas.draw_series(LineSeries::new(points, style))?;
        }

        let longest = summary
            .scenarios
            .iter()
            .flat_map(|s| s.queue_time_ms.iter().map(|(_, ms)| ms / 1000.0))
            .fold(1.0, f64::max);
        let mut queue = ChartBuilder::on(&bottom)
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .caption(
                format!(
                    "queue time, p99 of each {SYNC_SECONDS} s (the target: {} s)",
                    summary.target_queue_time_ms / 1000.0
                ),
                ("sans-serif", 16),
            )
            .build_cartesian_2d(0.0..end, 0.0..longest * 1.05)?;
        queue
            .configure_mesh()
            .x_desc("minutes")
            .y_desc("seconds")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (index, scenario) in summary.scenarios.iter().enumerate() {
            let points = scenario
                .queue_time_ms
                .iter()
                .map(|(second, ms)| (minutes(*second), ms / 1000.0));
            let style = colour(index).stroke_width(line_width(index));
            queue
                .draw_series(LineSeries::new(points, style))?
                .label(label(scenario))
                .legend(move |(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 18, y)],
                        colour(index).stroke_width(line_width(index).min(4)),
                    )
                });
        }
        let target = summary.target_queue_time_ms / 1000.0;
        queue.draw_series(LineSeries::new(
            [(0.0, target), (end, target)],
            BLACK.mix(0.4).stroke_width(1),
        ))?;
        queue
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .draw()?;
        root.present()?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str, replicas: Vec<(u64, i32)>) -> ScenarioSummary {
        ScenarioSummary {
            name: name.into(),
            namespace: format!("demo-{name}"),
            scaler: "HPA".into(),
            balancing: "L4".into(),
            replicas_start: 3,
            replicas_end: 3,
            replicas_max: replicas.iter().map(|r| r.1).max().unwrap_or(0),
            replicas,
            queue_time_ms: vec![(15, 10_000.0), (30, 0.0)],
            queue_time_p50_ms: 0.0,
            queue_time_p99_ms: 0.0,
            final_queue_time_p99_ms: 0.0,
            gpu_busy_percent: Default::default(),
            average_cpu_percent: 0.0,
            request_imbalance_ratio: None,
            served: 0,
            dropped: 0,
            backlog_left: 0,
        }
    }

    #[test]
    fn draws_both_panels_with_a_line_per_scenario() {
        let summary = Summary {
            duration_seconds: 120,
            target_queue_time_ms: 500.0,
            scenarios: vec![
                scenario("cpu", vec![(0, 3), (15, 3)]),
                scenario("l4", vec![(0, 3), (15, 6), (90, 4)]),
            ],
        };
        let text = svg(&summary).expect("drawn");
        assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
        assert!(text.contains("replicas") && text.contains("queue time, p99"));
        assert!(text.contains("cpu — HPA, L4") && text.contains("l4 — HPA, L4"));
        // each scenario: a line in each panel and its legend mark, in its own colour
        for colour in ["#A0A0A0", "#D62728"] {
            let lines = text
                .lines()
                .filter(|l| {
                    l.starts_with("<polyline") && l.contains(&format!("stroke=\"{colour}\""))
                })
                .count();
            assert_eq!(lines, 3, "{colour}: {text}");
        }
    }
}
