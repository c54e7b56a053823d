//! The site's rows and files read from `coverage.db` (crate `db`).

use std::collections::BTreeSet;

use crate::model::{FileCoverage, OwnerRow, ProfileError, SiteSource, files_from_profile};

/// Errors reading the database for the site.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("owner {owner}: its merged profile")]
    Profile {
        owner: String,
        #[source]
        source: ProfileError,
    },
    #[error("owner id {0:?} is not a number")]
    BadId(String),
}

/// A [`SiteSource`] over an open database.
#[derive(Debug)]
pub struct DbSource {
    db: db::Database,
}

impl DbSource {
    pub fn new(db: db::Database) -> DbSource {
        DbSource { db }
    }
}

fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    items
        .filter(|s| !s.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

impl SiteSource for DbSource {
    type Error = Error;

    fn rows(&self) -> Result<Vec<OwnerRow>, Error> {
        let mut out = Vec::new();
        for o in self.db.owners()? {
            let reports = self.db.owner_reports(o.id)?;
            let total = u64::try_from(o.total_stmts).unwrap_or(0);
            let covered = u64::try_from(o.covered_stmts).unwrap_or(0);
            let mut images = o.images.clone();
            if images.is_empty() {
                images = distinct(reports.iter().map(|r| r.image.clone()));
            }
            out.push(OwnerRow {
                id: o.id.to_string(),
                pods: distinct(reports.iter().map(|r| r.pod_name.clone())),
                hosts: distinct(reports.iter().map(|r| r.hostname.clone())),
                containers: distinct(reports.iter().map(|r| r.container_name.clone())),
                images,
                total_stmts: total,
                covered_stmts: covered,
                binary_key: format!("{}@{}", o.binary_name, o.meta_hash),
                input_hash: Some(o.merge_input_hash.clone()),
                source_url: o.source_url.clone(),
                source_commit: o.source_commit.clone(),
                module_path: Some(o.module_path.clone()).filter(|m| !m.is_empty()),
                namespace: o.namespace,
                owner_type: o.owner_type,
                owner: o.owner_name,
                binary: o.binary_name,
            });
        }
        Ok(out)
    }

    fn files(&self, row: &OwnerRow) -> Result<Vec<FileCoverage>, Error> {
        let id: i64 = row.id.parse().map_err(|_| Error::BadId(row.id.clone()))?;
        let profile = self.db.owner_profile(id)?;
        files_from_profile(&profile).map_err(|source| Error::Profile {
            owner: format!("{}/{}/{}", row.namespace, row.owner, row.binary),
            source,
        })
    }
}
