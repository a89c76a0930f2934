//! The image cache index: reference → digest, config and unpacked layers.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_rfc3339};

/// A cached image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub reference: String,
    pub digest: String,
    /// The image config (OCI JSON).
    pub config: String,
    /// Layer digests, lowest first.
    pub layers: Vec<String>,
}

impl Store {
    pub fn image(&self, reference: &str) -> Result<Option<ImageRow>, StoreError> {
        let row = self
            .db()
            .query_row(
                "SELECT reference, digest, config, layers FROM images WHERE reference = ?1",
                [reference],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(reference, digest, config, layers)| {
            let layers = serde_json::from_str(&layers).map_err(|e| StoreError::Corrupt {
                what: format!("image {reference}"),
                detail: e.to_string(),
            })?;
            Ok(ImageRow {
                reference,
                digest,
                config,
                layers,
            })
        })
        .transpose()
    }

    pub fn put_image(&self, img: &ImageRow) -> Result<(), StoreError> {
        self.write(|db| {
        let layers = serde_json::to_string(&img.layers).unwrap_or_default();
        db.execute(
            "INSERT OR REPLACE INTO images (reference, digest, config, layers, pulled_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![img.reference, img.digest, img.config, layers, now_rfc3339()],
        )?;
        Ok(())
    })
    }

    pub fn image_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT COUNT(*) FROM images", [], |r| r.get::<_, i64>(0))?
            as u64)
    }
}
