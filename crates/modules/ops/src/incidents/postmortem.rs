//! The postmortem draft written when an incident is resolved: the facts
//! (severity, duration, systems, teams, the whole timeline) filled in, and
//! the blameless sections left for the teams to write. Headings are
//! bilingual (English / 日本語): the teams are Japanese and English
//! speaking.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::lifecycle::Incident;

/// The postmortem draft of `incident` in Markdown. Meant for a resolved
/// incident; for an open one the duration reads "ongoing".
pub fn postmortem_markdown(incident: &Incident) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail.
    let _ = write_draft(&mut md, incident);
    md
}

fn write_draft(md: &mut String, i: &Incident) -> std::fmt::Result {
    writeln!(md, "# Postmortem / ポストモーテム: {} — {}", i.id, inline(&i.title))?;
    writeln!(md)?;
    writeln!(
        md,
        "> Draft generated on resolution. This review is blameless: describe systems, signals and decisions, \
         not people. / 解決時に自動生成された草稿です。非難しない (blameless) 振り返りとして、個人ではなく\
         仕組み・兆候・判断について記述してください。"
    )?;
    writeln!(md)?;
    writeln!(md, "| | |")?;
    writeln!(md, "|---|---|")?;
    writeln!(md, "| Incident / インシデント | {} |", i.id)?;
    writeln!(md, "| Severity / 重大度 | {} |", i.severity.label())?;
    writeln!(md, "| Status / 状態 | {} |", i.status)?;
    writeln!(md, "| Started / 発生 | {} |", stamp(i.created_at))?;
    let resolved = i.resolved_at.map_or_else(|| "—".to_owned(), stamp);
    writeln!(md, "| Resolved / 解決 | {resolved} |")?;
    let duration = i.duration().map_or_else(|| "ongoing / 対応中".to_owned(), human_duration);
    writeln!(md, "| Duration / 所要時間 | {duration} |")?;
    writeln!(md, "| Affected systems / 影響システム | {} |", list(&i.affected))?;
    writeln!(md, "| Teams / 対応チーム | {} |", list(&i.teams))?;
    writeln!(md)?;

    writeln!(md, "## Timeline / タイムライン")?;
    writeln!(md)?;
    writeln!(md, "| Time / 時刻 | Status / 状態 | Author / 記入者 | Note / メモ |")?;
    writeln!(md, "|---|---|---|---|")?;
    let mut previous = None;
    for e in &i.timeline {
        let status = match previous {
            None => format!("{} (declared / 宣言)", e.status),
            Some(p) if p != e.status => format!("{p} → {}", e.status),
            Some(_) => e.status.to_string(),
        };
        writeln!(md, "| {} | {status} | {} | {} |", stamp(e.at), cell(&e.author), cell(&e.note))?;
        previous = Some(e.status);
    }
    writeln!(md)?;

    let sections: [(&str, &str); 4] = [
        (
            "Impact / 影響",
            "Who and what was affected, for how long, and how badly (patients, staff, users, data). \
             / 誰に・何に・どのくらいの時間・どの程度の影響があったか(患者・職員・利用者・データ)。",
        ),
        (
            "Root cause / 根本原因",
            "What happened and why, including the conditions that allowed it. Ask \"why\" until you reach \
             systems and processes. / 何が起き、なぜ起きたか。それを許した条件も含めて、仕組みとプロセスに\
             たどり着くまで「なぜ」を繰り返してください。",
        ),
        (
            "What went well / うまくいったこと",
            "Detection, response, communication, tools that helped. / 検知・対応・連絡・役立った道具。",
        ),
        (
            "What went poorly / うまくいかなかったこと",
            "Gaps in detection, response or communication; where we were lucky. / 検知・対応・連絡の不足、\
             運が良かっただけの点。",
        ),
    ];
    for (heading, prompt) in sections {
        writeln!(md, "## {heading}")?;
        writeln!(md)?;
        writeln!(md, "_TODO: {prompt}_")?;
        writeln!(md)?;
    }
    writeln!(md, "## Action items / アクションアイテム")?;
    writeln!(md)?;
    writeln!(md, "| Action / 対応 | Owner / 担当 | Due / 期限 | Ticket / チケット |")?;
    writeln!(md, "|---|---|---|---|")?;
    writeln!(md, "| _TODO_ | | | |")?;
    Ok(())
}

/// RFC 3339 in the timestamp's own offset.
fn stamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// `1d 2h 3m 4s`, the zero parts left out; `0s` for nothing.
pub(crate) fn human_duration(d: time::Duration) -> String {
    let total = d.whole_seconds().max(0);
    let parts = [(total / 86_400, "d"), (total / 3_600 % 24, "h"), (total / 60 % 60, "m"), (total % 60, "s")];
    let text: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, u)| format!("{n}{u}")).collect();
    if text.is_empty() { "0s".to_owned() } else { text.join(" ") }
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "—".to_owned() } else { items.iter().map(|s| cell(s)).collect::<Vec<_>>().join(", ") }
}

/// Text inside a table cell: pipes escaped, line breaks as `<br>`.
fn cell(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return "—".to_owned();
    }
    t.replace('\\', "\\\\").replace('|', "\\|").replace("\r\n", "<br>").replace(['\n', '\r'], "<br>")
}

/// Text on one line (a heading).
fn inline(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(time::Duration::ZERO), "0s");
        assert_eq!(human_duration(time::Duration::seconds(45)), "45s");
        assert_eq!(human_duration(time::Duration::minutes(90)), "1h 30m");
        assert_eq!(human_duration(time::Duration::seconds(93_784)), "1d 2h 3m 4s");
    }

    #[test]
    fn cells_keep_tables_intact() {
        assert_eq!(cell("a | b\nc"), "a \\| b<br>c");
        assert_eq!(cell("  "), "—");
    }
}
