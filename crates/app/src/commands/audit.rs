//! `plexus audit verify` and `plexus audit export`.

use std::io::Write;
use std::process::ExitCode;

use plexus_core::audit::{AuditRecord, verify as verify_chain};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::ExportFormat;
use crate::config::Config;

/// Every chain to verify: one per node in the database, or the file.
fn load_chains(config: &Config) -> anyhow::Result<Vec<(String, Vec<AuditRecord>)>> {
    if !config.audit_in_database {
        let path = super::audit_path(config);
        return Ok(vec![(path.display().to_string(), plexus_store::read_records(&path)?)]);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = crate::wiring::open_store(config).await?;
        let mut chains = Vec::new();
        for node in store.audit_nodes().await? {
            let records = store.audit_records(&node, 0, u64::MAX).await?;
            chains.push((format!("node {node}"), records));
        }
        store.close().await;
        Ok(chains)
    })
}

pub(crate) fn verify(config: &Config) -> anyhow::Result<ExitCode> {
    let mut broken = 0usize;
    let chains = load_chains(config)?;
    if chains.is_empty() {
        println_out("audit log empty: no records yet")?;
    }
    for (name, records) in &chains {
        match verify_chain(records) {
            Ok(s) => println_out(&format!("audit log intact: {} records, head {} ({name})", s.records, s.head))?,
            Err(errors) => {
                for e in &errors {
                    eprintln!("audit log broken ({name}): {e}");
                }
                broken += errors.len();
            }
        }
    }
    if broken > 0 {
        eprintln!("{broken} problem(s) found");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn println_out(s: &str) -> std::io::Result<()> {
    writeln!(std::io::stdout().lock(), "{s}")
}

fn parse_time(s: Option<&str>, what: &str) -> anyhow::Result<Option<OffsetDateTime>> {
    s.map(|t| {
        OffsetDateTime::parse(t, &Rfc3339).map_err(|e| anyhow::anyhow!("--{what} `{t}` is not an RFC 3339 time: {e}"))
    })
    .transpose()
}

pub(crate) fn export(
    config: &Config,
    from: Option<&str>,
    to: Option<&str>,
    format: ExportFormat,
) -> anyhow::Result<ExitCode> {
    let (from, to) = (parse_time(from, "from")?, parse_time(to, "to")?);
    let mut records: Vec<AuditRecord> = load_chains(config)?.into_iter().flat_map(|(_, r)| r).collect();
    records.sort_by(|a, b| a.time.cmp(&b.time).then(a.seq.cmp(&b.seq)));
    let in_range = |r: &AuditRecord| {
        let Ok(t) = OffsetDateTime::parse(&r.time, &Rfc3339) else { return false };
        from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e)
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let ExportFormat::Csv = format {
        writeln!(out, "{}", plexus_core::audit::CSV_HEADER.join(","))?;
    }
    for r in records.iter().filter(|r| in_range(r)) {
        match format {
            ExportFormat::Jsonl => writeln!(out, "{}", serde_json::to_string(r)?)?,
            ExportFormat::Csv => {
                let row: Vec<_> = r.csv_row().iter().map(|f| plexus_core::audit::csv_field(f).into_owned()).collect();
                writeln!(out, "{}", row.join(","))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
