//! HTML escaping and the inline SVG chart of recent runs (duration and bytes), rendered on the
//! server: no script, no external asset.
//!
//! Must not: read anything; callers pass the values.

use crate::units::human_bytes;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One finished run on the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub duration_ms: u64,
    pub bytes: u64,
    pub ok: bool,
}

/// A `width`×`height` SVG of `points` (oldest first): duration as a blue line, bytes as an
/// orange one, each scaled to its own maximum; a failed run is a red dot. Empty: a grey box.
pub fn runs_svg(points: &[Point], width: u32, height: u32) -> String {
    let mut out = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    if points.is_empty() {
        out.push_str("<title>no finished runs yet</title>");
        out.push_str(&format!(
            "<rect x=\"0.5\" y=\"0.5\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#ccc\"/></svg>",
            width - 1,
            height - 1
        ));
        return out;
    }
    let max_d = points
        .iter()
        .map(|p| p.duration_ms)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_b = points.iter().map(|p| p.bytes).max().unwrap_or(0).max(1) as f64;
    let pad = 3.0;
    let (w, h) = (f64::from(width) - 2.0 * pad, f64::from(height) - 2.0 * pad);
    let x = |i: usize| {
        if points.len() == 1 {
            pad + w / 2.0
        } else {
            pad + w * i as f64 / (points.len() - 1) as f64
        }
    };
    let y = |v: f64, max: f64| pad + h - h * v / max;
    let line = |f: &dyn Fn(&Point) -> f64, max: f64| {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(f(p), max)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    out.push_str(&format!(
        "<title>last {} runs: longest {:.1} s, most {}</title>",
        points.len(),
        max_d / 1000.0,
        esc(&human_bytes(max_b as u64))
    ));
    out.push_str(&format!(
        "<polyline class=\"bytes\" fill=\"none\" stroke=\"#e08a00\" stroke-width=\"1.5\" points=\"{}\"/>",
        line(&|p| p.bytes as f64, max_b)
    ));
    out.push_str(&format!(
        "<polyline class=\"duration\" fill=\"none\" stroke=\"#2060c0\" stroke-width=\"1.5\" points=\"{}\"/>",
        line(&|p| p.duration_ms as f64, max_d)
    ));
    for (i, p) in points.iter().enumerate().filter(|(_, p)| !p.ok) {
        out.push_str(&format!(
            "<circle class=\"failed\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#c00\"/>",
            x(i),
            y(p.duration_ms as f64, max_d)
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_charts() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(runs_svg(&[], 100, 30).contains("no finished runs"));
        let pts = [
            Point {
                duration_ms: 1000,
                bytes: 10,
                ok: true,
            },
            Point {
                duration_ms: 2000,
                bytes: 0,
                ok: false,
            },
            Point {
                duration_ms: 500,
                bytes: 20,
                ok: true,
            },
        ];
        let svg = runs_svg(&pts, 100, 30);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        // The longest run touches the top (y = pad), the first point the left edge.
        assert!(svg.contains("50.0,3.0"), "{svg}");
        assert!(svg.contains("points=\"3.0,"), "{svg}");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
