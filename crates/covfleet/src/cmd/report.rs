//! `covfleet report --func`: function coverage per owner, as `go tool cover
//! -func` prints it.

use std::process::ExitCode;

use super::analysis::{CollectionArgs, owners, usage};

/// Arguments of `covfleet report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collection: CollectionArgs,
    /// Per function: `file:line: name pct%` and a total, per owner.
    #[arg(long)]
    pub func: bool,
    /// Only owners whose `namespace/owner`, `namespace/type/owner` or owner
    /// name matches; repeatable.
    #[arg(long = "owner", value_name = "GLOB")]
    pub owners: Vec<String>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.func {
        return Err(usage("covfleet report: say what to report (--func)"));
    }
    let database = args.collection.open()?;
    let paths = args.collection.repo_paths()?;
    let selected = owners(&database, &args.owners)?;
    let many = selected.len() > 1;
    let mut json = Vec::new();
    for o in selected {
        let c = report::cov::OwnerCov::load(&database, o)?;
        let op = paths.for_owner(&c.owner, &c.file_names());
        let lines = report::funcs::func_lines(&c, &op);
        if args.json {
            json.push(serde_json::json!({
                "namespace": c.owner.namespace,
                "owner_type": c.owner.owner_type,
                "owner": c.owner.owner_name,
                "binary": c.owner.binary_name,
                "meta_hash": c.owner.meta_hash,
                "functions": lines,
            }));
            continue;
        }
        if many {
            println!(
                "# {} {} {} {}",
                c.owner.namespace, c.owner.owner_type, c.owner.owner_name, c.owner.binary_name
            );
        }
        print!("{}", report::funcs::format_funcs(&lines));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(ExitCode::SUCCESS)
}
