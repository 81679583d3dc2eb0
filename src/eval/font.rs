//! The one typeface of chunkql's pictures: DejaVu Sans, compiled into the
//! binary (the `dejavu` crate) and handed to plotters' ab_glyph text
//! renderer, so that a picture draws the same on any machine, with or
//! without system fonts (a GPU image without a fontconfig set-up made
//! every plot fail before 2026-12-04).

use std::sync::Once;

use plotters::style::FontStyle;

/// The family name the pictures ask for (plotters' default family too).
pub const FAMILY: &str = "sans-serif";

/// Registers DejaVu Sans as [`FAMILY`] with plotters, once per process;
/// every picture calls it before drawing. plotters keeps its registered
/// fonts in a table of its own.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Only an unreadable font file fails here, and the bytes are the
        // dejavu crate's, checked by the test below.
        let font = dejavu::sans::regular();
        let registered = plotters::style::register_font(FAMILY, FontStyle::Normal, font);
        assert!(registered.is_ok(), "the embedded DejaVu Sans is not a font");
    });
}

#[cfg(test)]
mod tests {
    use plotters::prelude::*;

    /// Text drawn after [`super::register`] leaves dark pixels where it is,
    /// with no system font involved.
    #[test]
    fn text_is_drawn_in_the_embedded_font() {
        super::register();
        let (w, h) = (200u32, 60u32);
        let mut pixels = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            root.draw(&Text::new("Q 1.5", (10, 10), (super::FAMILY, 30)))
                .unwrap();
            root.present().unwrap();
        }
        let dark = pixels.chunks(3).filter(|p| p[0] < 128).count();
        assert!(dark > 50, "{dark} dark pixels: the text was not drawn");
    }
}
