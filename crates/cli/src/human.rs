//! Figures for people: the units and decimals the dashboard uses (`fmtRate` in
//! crates/webui/assets/app.js), so that `status` and the page read the same.

/// A rate (or any per-second figure) with a k, M or G suffix and about three significant
/// digits: `9.8`, `100`, `1500`, `12.3 k`, `13.0 M`, `1.25 G`. Add the unit yourself
/// (`format!("{}/s", rate(v))`).
pub fn rate(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".to_owned()
    } else if a >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if a >= 1e6 {
        // One decimal fewer from each digit before the point on: 9.87 M, 98.7 M, 987 M.
        let decimals = 2 - usize::from(a >= 1e7) - usize::from(a >= 1e8);
        format!("{:.*} M", decimals, v / 1e6)
    } else if a >= 1e4 {
        format!("{:.*} k", 1 - usize::from(a >= 1e5), v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn small_rates_keep_one_decimal() {
        assert_eq!(rate(0.0), "0.0");
        assert_eq!(rate(0.2), "0.2");
        assert_eq!(rate(9.8), "9.8");
        assert_eq!(rate(91.64), "91.6");
    }

    #[test]
    fn hundreds_and_thousands_are_whole() {
        assert_eq!(rate(100.0), "100");
        assert_eq!(rate(200.4), "200");
        assert_eq!(rate(9_999.0), "9999");
    }

    #[test]
    fn thousands_millions_and_billions_get_a_suffix() {
        assert_eq!(rate(32_000.0), "32.0 k");
        assert_eq!(rate(640_000.0), "640 k");
        assert_eq!(rate(5_300_000.0), "5.30 M");
        assert_eq!(rate(13_043_200.0), "13.0 M");
        assert_eq!(rate(12_700_000.0), "12.7 M");
        assert_eq!(rate(250_000_000.0), "250 M");
        assert_eq!(rate(1_250_000_000.0), "1.25 G");
    }

    #[test]
    fn not_a_number_is_a_dash() {
        assert_eq!(rate(f64::NAN), "-");
        assert_eq!(rate(f64::INFINITY), "-");
    }
}
