//! SVG plots for `forewarm simulate --out` (plotters).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::sim::{PolicyRun, SimReport};

type PlotResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

/// Every plot's ending: the legend in a framed box, then the file written.
fn legend_and_present<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    root: &DrawingArea<SVGBackend<'a>, Shift>,
) -> PlotResult {
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(boxed)?;
    root.present().map_err(boxed)?;
    Ok(())
}

/// Warming cost against cold-start rate, one point per policy run: the
/// swept baselines draw their frontiers, forewarm and the oracle are points.
pub(super) fn cost_vs_cold(path: &Path, r: &SimReport) -> anyhow::Result<()> {
    draw_cost_vs_cold(path, r).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn draw_cost_vs_cold(path: &Path, r: &SimReport) -> PlotResult {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(boxed)?;
    let max_cost = r
        .policies
        .iter()
        .map(|p| p.warm_cost_usd)
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.1;
    let max_rate = r
        .policies
        .iter()
        .map(|p| 100.0 * p.cold_start_rate)
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: warming cost vs cold starts", r.scenario),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_cost, 0.0..max_rate)
        .map_err(boxed)?;
    chart
        .configure_mesh()
        .x_desc("warming cost, USD (report period)")
        .y_desc("real requests cold, %")
        .draw()
        .map_err(boxed)?;
    let families = [
        "fixed",
        "lambda-warmer",
        "provisioned",
        "forewarm",
        "oracle",
        "none",
    ];
    for (k, family) in families.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let mut pts: Vec<(f64, f64)> = r
            .policies
            .iter()
            .filter(|p| p.name.starts_with(family))
            .map(|p| (p.warm_cost_usd, 100.0 * p.cold_start_rate))
            .collect();
        if pts.is_empty() {
            continue;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() > 1 {
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(boxed)?;
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))
            .map_err(boxed)?
            .label(*family)
            .legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
    }
    legend_and_present(&mut chart, &root)
}

/// One function under one policy, minute by minute: requests, the warm pool,
/// the controller's target, and cold starts.
pub(super) fn function_timeline(path: &Path, id: &str, run: &PolicyRun) -> anyhow::Result<()> {
    draw_function_timeline(path, id, run).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn draw_function_timeline(path: &Path, id: &str, run: &PolicyRun) -> PlotResult {
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(boxed)?;
    let t = &run.timeline;
    let last = t.last().map_or(1, |p| p.minute + 1);
    let top = t
        .iter()
        .map(|p| p.requests.max(p.warm_pool).max(p.target))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let short: String = id.chars().take(12).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("function {short} under {}", run.report.name),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0u32..last, 0.0..top)
        .map_err(boxed)?;
    chart
        .configure_mesh()
        .x_desc("minute")
        .y_desc("count per minute")
        .draw()
        .map_err(boxed)?;
    type Series = (
        &'static str,
        RGBColor,
        fn(&crate::sim::TimelinePoint) -> u32,
    );
    let series: [Series; 3] = [
        ("requests", BLUE, |p| p.requests),
        ("warm pool", GREEN, |p| p.warm_pool),
        ("target", MAGENTA, |p| p.target),
    ];
    for (name, color, f) in series {
        chart
            .draw_series(LineSeries::new(
                t.iter().map(|p| (p.minute, f(p) as f64)),
                color,
            ))
            .map_err(boxed)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
    }
    chart
        .draw_series(
            t.iter()
                .filter(|p| p.cold_starts > 0)
                .map(|p| Cross::new((p.minute, p.cold_starts as f64), 4, RED)),
        )
        .map_err(boxed)?
        .label("cold starts")
        .legend(|(x, y)| Cross::new((x, y), 4, RED));
    legend_and_present(&mut chart, &root)
}

/// `forewarm probe --out`: the latency histogram (log-spaced bins), warm
/// answers below and cold ones stacked on top.
#[cfg(feature = "aws")]
pub(super) fn probe_histogram(
    path: &Path,
    title: &str,
    bins: &[crate::probe::Bin],
) -> anyhow::Result<()> {
    draw_probe_histogram(path, title, bins).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(feature = "aws")]
fn draw_probe_histogram(path: &Path, title: &str, bins: &[crate::probe::Bin]) -> PlotResult {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(boxed)?;
    let n = bins.len().max(1);
    let top = bins
        .iter()
        .map(|b| b.warm + b.cold + b.unknown)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(boxed)?;
    let edges: Vec<u64> = bins.iter().map(|b| b.lo_ms).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(10))
        .x_label_formatter(&|x| {
            edges
                .get(x.round() as usize)
                .map_or(String::new(), |&e| crate::probe::ms(e))
        })
        .x_desc("latency (log scale; label: bin's lower edge)")
        .y_desc("requests")
        .draw()
        .map_err(boxed)?;
    let warm = RGBColor(70, 110, 200);
    let cold = RGBColor(230, 120, 40);
    chart
        .draw_series(bins.iter().enumerate().map(|(i, b)| {
            let h = (b.warm + b.unknown) as f64;
            Rectangle::new(
                [(i as f64 + 0.05, 0.0), (i as f64 + 0.95, h)],
                warm.filled(),
            )
        }))
        .map_err(boxed)?
        .label("warm (or not told)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], warm.filled()));
    chart
        .draw_series(bins.iter().enumerate().map(|(i, b)| {
            let base = (b.warm + b.unknown) as f64;
            Rectangle::new(
                [
                    (i as f64 + 0.05, base),
                    (i as f64 + 0.95, base + b.cold as f64),
                ],
                cold.filled(),
            )
        }))
        .map_err(boxed)?
        .label("cold")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], cold.filled()));
    legend_and_present(&mut chart, &root)
}
