//! Drawing: horizontal bar charts and line plots as SVG text, their axes and labels.

use super::*;

/// Horizontal bars (one group per row, one bar per variant) on a log axis in µs.
pub(super) fn bar_plot(
    id: &'static str,
    title: &str,
    caption: &str,
    rows: Vec<Row>,
    x_label: &str,
    y_label: &str,
) -> Result<Option<Plot>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let used: Vec<usize> = (0..VARIANTS.len())
        .filter(|v| rows.iter().any(|r| r.bars[*v].is_some()))
        .collect();
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.bars.iter().flatten())
        .flat_map(|(p50, p99)| [Some(*p50), *p99])
        .flatten()
        .filter(|v| *v > 0.0)
        .map(|v| v / 1000.0)
        .collect();
    let (lo, hi) = decades(&values);
    let band = 14 * used.len() as u32 + 10;
    let height = 110 + band * rows.len() as u32;
    let longest = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let n = rows.len() as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(40 + longest * 7)
            .build_cartesian_2d((lo..hi).log_scale(), -0.5..n - 0.5)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&|v| micros_text(*v))
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style((FONT, 14))
            .label_style((FONT, 12))
            .draw()?;
        let slot = 0.8 / used.len() as f64;
        for (k, v) in used.iter().enumerate() {
            let (name, color) = VARIANTS[*v];
            // Row 0 at the top.
            let centre = |i: usize| n - 1.0 - i as f64 - 0.4 + slot * (k as f64 + 0.5);
            let bars: Vec<(usize, f64, Option<f64>)> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.bars[*v].map(|(p50, p99)| (i, p50, p99)))
                // A log axis has no zero: a figure of 0 is left out rather than drawn to -inf.
                .filter(|(_, p50, _)| *p50 > 0.0)
                .collect();
            chart
                .draw_series(bars.iter().map(|(i, p50, _)| {
                    let y = centre(*i);
                    Rectangle::new(
                        [(lo, y - 0.42 * slot), (p50 / 1000.0, y + 0.42 * slot)],
                        color.filled(),
                    )
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            chart.draw_series(bars.iter().filter_map(|(i, p50, p99)| {
                let y = centre(*i);
                p99.map(|p99| {
                    PathElement::new(
                        vec![(p50 / 1000.0, y), (p99 / 1000.0, y)],
                        BLACK.stroke_width(1),
                    )
                })
            }))?;
            chart.draw_series(bars.iter().filter_map(|(i, _, p99)| {
                let y = centre(*i);
                p99.map(|p99| {
                    PathElement::new(
                        vec![
                            (p99 / 1000.0, y - 0.3 * slot),
                            (p99 / 1000.0, y + 0.3 * slot),
                        ],
                        BLACK.stroke_width(1),
                    )
                })
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()?;
        let style =
            TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, r) in rows.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(lo, n - 1.0 - i as f64));
            root.draw_text(&r.label, &style, (px - 6, py))?;
        }
        root.present()?;
    }
    Ok(Some(Plot {
        id,
        title: title.to_owned(),
        caption: caption.to_owned(),
        x_label: x_label.to_owned(),
        y_label: y_label.to_owned(),
        svg,
    }))
}

pub(super) struct LinePlot {
    pub(super) id: &'static str,
    pub(super) title: &'static str,
    pub(super) caption: &'static str,
    pub(super) x_label: &'static str,
    pub(super) y_label: &'static str,
    /// A log x axis with ticks at powers of this base (4 for sizes, 10 for counts), or linear.
    pub(super) x_log: Option<f64>,
    pub(super) x_fmt: fn(f64) -> String,
    /// Figures are divided by this before plotting (ns → µs).
    pub(super) y_div: f64,
    pub(super) y_fmt: fn(f64) -> String,
}

/// Adds `point` to the series named `label`, a new series if there is none yet.
pub(super) fn add_point(series: &mut Series, label: String, point: Point) {
    match series.iter_mut().find(|(l, _)| *l == label) {
        Some((_, points)) => points.push(point),
        None => series.push((label, vec![point])),
    }
}

/// Named series of points (any order: each is drawn by increasing x), each point's median on
/// the line and its min..max as a whisker; log-log, or linear for counts.
pub(super) fn line_plot(p: LinePlot, series: Series) -> Result<Option<Plot>> {
    let series: Series = series
        .into_iter()
        .map(|(l, pts)| {
            let mut pts = pts
                .into_iter()
                .map(|(x, y)| (x, y.map(|v| v / p.y_div)))
                .filter(|(x, y)| *x > 0.0 && y.iter().all(|v| *v > 0.0))
                .collect::<Vec<_>>();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (l, pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().flat_map(|q| q.1))
        .collect();
    let legend_height = 20 * series.len() as u32;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, 440 + legend_height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot_area, legend_area) = root.split_vertically(440);
        let mut builder = ChartBuilder::on(&plot_area);
        builder
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(80);
        let looks = looks(&series);
        let draw = |legend: Vec<(String, (RGBColor, bool))>| -> Result<()> {
            for (i, (label, (color, thin))) in legend.iter().enumerate() {
                let y = 6 + 20 * i as i32;
                legend_area.draw(&PathElement::new(
                    vec![(90, y + 6), (120, y + 6)],
                    color.stroke_width(if *thin { 1 } else { 3 }),
                ))?;
                legend_area.draw(&Text::new(label.clone(), (128, y), (FONT, 13)))?;
            }
            Ok(())
        };
        let legend: Vec<(String, (RGBColor, bool))> = series
            .iter()
            .zip(&looks)
            .map(|((l, _), look)| (l.clone(), *look))
            .collect();
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_label_formatter(&|v| (p.x_fmt)(*v))
                    .y_label_formatter(&|v| (p.y_fmt)(*v))
                    .x_desc(p.x_label)
                    .y_desc(p.y_label)
                    .axis_desc_style((FONT, 14))
                    .label_style((FONT, 12))
                    .draw()?;
                for ((_, points), &(color, thin)) in series.iter().zip(&looks) {
                    chart.draw_series(LineSeries::new(
                        points.iter().map(|&(x, [y, ..])| (x, y)),
                        color.stroke_width(if thin { 1 } else { 2 }),
                    ))?;
                    let marker = if thin {
                        color.stroke_width(1)
                    } else {
                        color.filled()
                    };
                    chart.draw_series(
                        points
                            .iter()
                            .map(|&(x, [y, ..])| Circle::new((x, y), 3, marker)),
                    )?;
                    // The spread over the runs, where there is one.
                    chart.draw_series(
                        points.iter().filter(|(_, [_, lo, hi])| hi > lo).map(
                            |&(x, [y, lo, hi])| ErrorBar::new_vertical(x, lo, y, hi, color, 6),
                        ),
                    )?;
                }
            }};
        }
        let (ylo, yhi) = decades(&ys);
        if let Some(base) = p.x_log {
            // Powers of four: byte sizes read as 64 B, 1 KiB, 16 KiB … rather than 1000 B.
            let (xlo, xhi) = powers_of(base, &xs);
            let ticks: Vec<f64> = (0..)
                .map(|k| xlo * base.powi(k))
                .take_while(|t| *t <= xhi * 1.0001)
                .collect();
            body!(builder.build_cartesian_2d(
                (xlo..xhi).log_scale().with_key_points(ticks),
                (ylo..yhi).log_scale()
            )?);
        } else {
            let xhi = xs.iter().copied().fold(1.0, f64::max);
            let yhi = ys.iter().copied().fold(1.0, f64::max) * 1.1;
            body!(builder.build_cartesian_2d(0.0..xhi + 0.5, 0.0..yhi)?);
        }
        draw(legend)?;
        root.present()?;
    }
    Ok(Some(Plot {
        id: p.id,
        title: p.title.to_owned(),
        caption: p.caption.to_owned(),
        x_label: p.x_label.to_owned(),
        y_label: p.y_label.to_owned(),
        svg,
    }))
}

/// Each line's colour, and whether it is drawn thin with hollow points: lines that differ only
/// by placement share a colour, the one on two CPUs drawn thin.
pub(super) fn looks(series: &Series) -> Vec<(RGBColor, bool)> {
    let mut groups: Vec<&str> = Vec::new();
    series
        .iter()
        .map(|(label, _)| {
            let thin = label.ends_with(", two CPUs");
            let group = label
                .strip_suffix(", two CPUs")
                .or_else(|| label.strip_suffix(", one CPU"))
                .unwrap_or(label);
            let i = groups.iter().position(|g| *g == group).unwrap_or_else(|| {
                groups.push(group);
                groups.len() - 1
            });
            (PALETTE[i % PALETTE.len()], thin)
        })
        .collect()
}

/// The range out to whole decades around the values (a log axis needs ticks to show).
pub(super) fn decades(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (1.0, 10.0);
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    (lo, hi)
}

/// The range out to powers of four around the values.
pub(super) fn powers_of(base: f64, values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (1.0, base);
    }
    let lo = base.powf(lo.log(base).floor());
    let hi = base.powf(hi.log(base).ceil()).max(lo * base);
    (lo, hi)
}

/// `2.5 µs`-style tick text for values already in µs.
pub(super) fn micros_text(us: f64) -> String {
    if us >= 1000.0 {
        format!("{} ms", trim(us / 1000.0))
    } else if us >= 1.0 {
        format!("{} µs", trim(us))
    } else {
        format!("{} ns", trim(us * 1000.0))
    }
}

/// Tick text for byte sizes: `64 B`, `4 KiB`, `1 MiB`.
pub(super) fn bytes_text(b: f64) -> String {
    labkit::report::format_bytes(b.round() as u64)
}

pub(super) fn mib_text(m: f64) -> String {
    format!("{} MiB", trim(m))
}

pub(super) fn count_text(n: f64) -> String {
    if (n - n.round()).abs() < 1e-9 {
        format!("{}", n.round())
    } else {
        String::new()
    }
}

pub(super) fn times_text(x: f64) -> String {
    format!("×{}", trim(x))
}

pub(super) fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
