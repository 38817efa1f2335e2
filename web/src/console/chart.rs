//! The overview's activity chart, drawn on the server as SVG: a pair of bars per day (sign-ins,
//! failed codes), scaled to the busiest day. The template writes the shapes; no script, no
//! inline style (colours come from the stylesheet's classes).

use twofold_services::overview::DailyActivity;

/// Drawing area, in SVG user units (the SVG scales to the page's width).
pub(crate) const WIDTH: u32 = 600;
pub(crate) const HEIGHT: u32 = 160;
/// Room under the bars for the first and last day's dates.
const AXIS: u32 = 20;

/// One bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bar {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// `sign-ins` or `failed`, the stylesheet's class suffix.
    pub(crate) series: &'static str,
    /// What a pointer over it shows (`2026-12-03: 4`).
    pub(crate) title: String,
}

/// The bars of `days`, oldest on the left.
pub(crate) fn bars(days: &[DailyActivity]) -> Vec<Bar> {
    let max = days
        .iter()
        .map(|d| d.sign_ins.max(d.failed_codes))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = HEIGHT - AXIS;
    let slot = WIDTH / u32::try_from(days.len().max(1)).unwrap_or(1);
    let bar = (slot / 2).saturating_sub(1).max(1);
    let mut out = Vec::with_capacity(days.len() * 2);
    for (i, d) in days.iter().enumerate() {
        let x0 = u32::try_from(i).unwrap_or(0) * slot;
        for (offset, value, series) in
            [(0, d.sign_ins, "sign-ins"), (bar, d.failed_codes, "failed")]
        {
            // Scaled in u128: no count can overflow the product.
            let height = u32::try_from(u128::from(value) * u128::from(plot) / u128::from(max))
                .unwrap_or(plot);
            out.push(Bar {
                x: x0 + offset,
                y: plot - height,
                width: bar,
                height,
                series,
                title: format!("{}: {value}", d.day.format("%Y-%m-%d")),
            });
        }
    }
    out
}

/// Where the axis labels go: y of the baseline text.
pub(crate) fn label_y() -> u32 {
    HEIGHT - 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn day(n: u32, sign_ins: u64, failed_codes: u64) -> DailyActivity {
        DailyActivity {
            day: NaiveDate::from_ymd_opt(2026, 11, n).unwrap(),
            sign_ins,
            failed_codes,
        }
    }

    #[test]
    fn the_busiest_value_fills_the_plot_and_quiet_days_draw_nothing() {
        let b = bars(&[day(1, 10, 0), day(2, 5, 10), day(3, 0, 0)]);
        assert_eq!(b.len(), 6);
        assert_eq!(b[0].height, HEIGHT - AXIS);
        assert_eq!(b[0].y, 0);
        assert_eq!(b[2].height, (HEIGHT - AXIS) / 2);
        assert_eq!(b[3].height, HEIGHT - AXIS);
        assert!(b[4].height == 0 && b[5].height == 0);
        assert!(b.iter().all(|r| r.x + r.width <= WIDTH));
        assert_eq!(b[2].title, "2026-11-02: 5");
        assert_eq!(b[3].series, "failed");
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let b = bars(&[day(1, u64::MAX, 1)]);
        assert_eq!(b[0].height, HEIGHT - AXIS);
    }
}
