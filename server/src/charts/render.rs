//! Server-side pictures of a trend: the drawing in `app::charts::draw` on plotters' SVG and bitmap backends. Text
//! is set in DejaVu Sans, bundled in `server/assets/fonts` (no system font is assumed), and PNGs are encoded with
//! the `png` crate.

use std::sync::Once;

use app::charts::{draw_trend, DrawOptions, Trend};
use app::error::AppError;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The picture's size bounds, in pixels.
pub const MAX_HEIGHT: u32 = 2000;
pub const MIN_HEIGHT: u32 = 120;

fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            tracing::error!("The bundled chart font could not be read; charts will be drawn without text.");
        }
    });
}

fn drawing_failed(message: String) -> AppError {
    tracing::error!(%message, "A chart could not be rendered.");
    AppError::internal()
}

pub fn svg(trend: &Trend, width: u32, height: u32, options: &DrawOptions) -> Result<String, AppError> {
    register_font();
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        draw_trend(&area, trend, options).map_err(drawing_failed)?;
    }
    Ok(out)
}

/// The picture as RGB pixels, row by row.
pub fn pixels(trend: &Trend, width: u32, height: u32, options: &DrawOptions) -> Result<Vec<u8>, AppError> {
    register_font();
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw_trend(&area, trend, options).map_err(drawing_failed)?;
    }
    Ok(rgb)
}

pub fn png(trend: &Trend, width: u32, height: u32, options: &DrawOptions) -> Result<Vec<u8>, AppError> {
    let rgb = pixels(trend, width, height, options)?;
    encode_png(&rgb, width, height).map_err(|err| drawing_failed(err.to_string()))
}

pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}
