//! scrape (in progress)
