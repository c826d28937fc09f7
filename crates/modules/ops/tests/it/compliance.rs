//! Compliance checklists: parsing realistic bilingual checklists, status per
//! team, metadata, and hostile input.

use plexus_ops::compliance::{ALL_TEAMS, Checklist, ComplianceStatus, load_dir, parse_checklist, status};
use time::Date;
use time::macros::date;

const HIPAA: &str = r#"# HIPAA / 個人情報保護法 チェックリスト

Applies to every system that stores patient or driver data. 各チームは期限までに完了すること。

- [x] Appoint a privacy officer / 個人情報保護管理者の任命 (owner: @tanaka)
- [ ] Annual privacy training for all staff (due: 2026-03-31)

## medical

### Access control / アクセス制御
- [x] Encrypt PHI at rest (AES-256) (owner: @sato, due: 2026-01-15)
- [ ] Audit log retention of 6 years (期限: 2026-06-30)
  - [ ] Export audit logs to WORM storage (担当: @suzuki)
  - [x] Define the retention policy
- [ ] Business associate agreements signed with every vendor (owner: @sato) (due: 2026-12-01)

### 患者の権利
* [X] 患者からの開示請求手順の整備（担当者：@yamada、期限：2026-02-01）
* [ ] 削除請求への対応フロー (期限: 2026/04/15)

## Team: VoiceDrive
1. [ ] 音声データの匿名化 (owner: @kimura, due: 2026-04-30)
2. [x] Consent screen before recording (due: 2026-02-28)
3. [ ] Data retention: delete raw audio after 30 days (期限: 2026年9月1日)

```markdown
- [ ] an example in a code block, not a task
# not a title
```

<!--
- [ ] commented out
-->

## 医療チーム {#medical}
- [ ] 医療情報システムの安全管理ガイドライン第6.0版への対応 (owner: @ito, due: 2026-13-01)
"#;

/// No title heading (the file name is the title), CRLF line ends, the team
/// spelled in lower case.
const SECURITY: &str = "Quarterly security review.\r\n\r\n## voicedrive\r\n- [ ] Penetration test (owner: @kimura, \
                        due: 2026-06-15)\r\n- [x] TLS 1.3 everywhere\r\n## medical\r\n- [ ] Penetration test of \
                        the PACS gateway (due: 2026-04-01)\r\n";

const TODAY: Date = date!(2026 - 05 - 01);

fn checklists() -> Vec<Checklist> {
    vec![parse_checklist("hipaa.md", HIPAA), parse_checklist("security.md", SECURITY)]
}

/// (team, done, text prefix, owner, due) of every task.
type TaskRow<'a> = (&'a str, bool, &'a str, Option<&'a str>, Option<Date>);

#[track_caller]
fn check_tasks(checklist: &Checklist, expect: &[TaskRow<'_>]) {
    assert_eq!(checklist.tasks.len(), expect.len(), "{:#?}", checklist.tasks);
    for (task, (team, done, text, owner, due)) in checklist.tasks.iter().zip(expect) {
        assert_eq!(
            (task.team.as_str(), task.done, task.owner.as_deref(), task.due),
            (*team, *done, *owner, *due),
            "{task:?}"
        );
        assert!(task.text.starts_with(text), "{:?} does not start with {text:?}", task.text);
    }
}

#[test]
fn parses_a_bilingual_checklist() {
    let c = parse_checklist("compliance/hipaa.md", HIPAA);
    assert_eq!(c.title, "HIPAA / 個人情報保護法 チェックリスト");
    assert_eq!(c.name, "compliance/hipaa.md");
    check_tasks(
        &c,
        &[
            (ALL_TEAMS, true, "Appoint a privacy officer", Some("tanaka"), None),
            (ALL_TEAMS, false, "Annual privacy training", None, Some(date!(2026 - 03 - 31))),
            ("medical", true, "Encrypt PHI at rest", Some("sato"), Some(date!(2026 - 01 - 15))),
            ("medical", false, "Audit log retention", None, Some(date!(2026 - 06 - 30))),
            ("medical", false, "Export audit logs", Some("suzuki"), None),
            ("medical", true, "Define the retention policy", None, None),
            ("medical", false, "Business associate agreements", Some("sato"), Some(date!(2026 - 12 - 01))),
            ("medical", true, "患者からの開示請求手順", Some("yamada"), Some(date!(2026 - 02 - 01))),
            ("medical", false, "削除請求への対応フロー", None, Some(date!(2026 - 04 - 15))),
            ("VoiceDrive", false, "音声データの匿名化", Some("kimura"), Some(date!(2026 - 04 - 30))),
            ("VoiceDrive", true, "Consent screen", None, Some(date!(2026 - 02 - 28))),
            ("VoiceDrive", false, "Data retention", None, Some(date!(2026 - 09 - 01))),
            ("medical", false, "医療情報システム", Some("ito"), None),
        ],
    );
    let sections: Vec<Option<&str>> = c.tasks.iter().map(|t| t.section.as_deref()).collect();
    assert_eq!(sections[2], Some("Access control / アクセス制御"));
    assert_eq!(sections[7], Some("患者の権利"));
    assert_eq!(sections[9], None, "a team heading ends the section");
    let depths: Vec<usize> = c.tasks.iter().map(|t| t.depth).collect();
    assert_eq!(depths[3..6], [0, 1, 1]);
    assert_eq!(c.tasks[0].line, 5);
    assert_eq!(c.warnings, ["line 36: due date \"2026-13-01\" is not a date (expected YYYY-MM-DD)"]);
}

#[test]
fn a_file_without_a_title_is_named_after_the_file() {
    let c = parse_checklist("security.md", SECURITY);
    assert_eq!(c.title, "security");
    check_tasks(
        &c,
        &[
            ("voicedrive", false, "Penetration test (owner", Some("kimura"), Some(date!(2026 - 06 - 15))),
            ("voicedrive", true, "TLS 1.3 everywhere", None, None),
            ("medical", false, "Penetration test of the PACS gateway", None, Some(date!(2026 - 04 - 01))),
        ],
    );
    assert!(c.tasks.iter().all(|t| !t.text.contains('\r')));
}

/// (line, owner, due, days overdue) of an open task.
type OpenRow<'a> = (usize, Option<&'a str>, Option<&'a str>, Option<i64>);

#[test]
fn status_per_team_and_checklist() {
    let s = status(&checklists(), TODAY, None);
    assert_eq!(s.today, "2026-05-01");
    assert_eq!(s.known_teams, ["all", "medical", "VoiceDrive"]);
    let summary: Vec<(&str, usize, usize, usize, usize, f64)> = s
        .teams
        .iter()
        .map(|t| (t.team.as_str(), t.totals.total, t.totals.done, t.totals.open, t.totals.overdue, t.totals.percent))
        .collect();
    assert_eq!(summary, [("all", 2, 1, 1, 1, 50.0), ("medical", 9, 3, 6, 2, 33.3), ("VoiceDrive", 5, 2, 3, 1, 40.0)]);
    assert_eq!((s.totals.total, s.totals.done, s.totals.open, s.totals.overdue), (16, 6, 10, 4));
    assert_eq!(s.totals.percent, 37.5);

    let medical = &s.teams[1];
    let per_checklist: Vec<(&str, &str, usize, usize)> = medical
        .checklists
        .iter()
        .map(|c| (c.name.as_str(), c.title.as_str(), c.counts.total, c.counts.overdue))
        .collect();
    assert_eq!(
        per_checklist,
        [("hipaa.md", "HIPAA / 個人情報保護法 チェックリスト", 8, 1), ("security.md", "security", 1, 1)]
    );
    let open: Vec<OpenRow<'_>> = medical.checklists[0]
        .open_tasks
        .iter()
        .map(|t| (t.line, t.owner.as_deref(), t.due.as_deref(), t.days_overdue))
        .collect();
    assert_eq!(
        open,
        [
            (12, None, Some("2026-06-30"), None),
            (13, Some("suzuki"), None, None),
            (15, Some("sato"), Some("2026-12-01"), None),
            (19, None, Some("2026-04-15"), Some(16)),
            (36, Some("ito"), None, None),
        ]
    );
    assert_eq!(medical.checklists[0].open_tasks[3].section.as_deref(), Some("患者の権利"));
    assert_eq!(s.warnings, ["hipaa.md: line 36: due date \"2026-13-01\" is not a date (expected YYYY-MM-DD)"]);
}

#[test]
fn a_team_filter_keeps_that_team_and_the_tasks_for_all() {
    let s = status(&checklists(), TODAY, Some("voicedrive"));
    assert_eq!(s.team.as_deref(), Some("voicedrive"));
    assert_eq!(s.teams.iter().map(|t| t.team.as_str()).collect::<Vec<_>>(), ["all", "VoiceDrive"]);
    assert_eq!((s.totals.total, s.totals.done, s.totals.open, s.totals.overdue), (7, 3, 4, 2));
    let vd = &s.teams[1];
    assert_eq!(vd.checklists.iter().map(|c| c.counts.total).collect::<Vec<_>>(), [3, 2]);
    let overdue: Vec<&str> = vd
        .checklists
        .iter()
        .flat_map(|c| &c.open_tasks)
        .filter(|t| t.days_overdue.is_some())
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(overdue, ["音声データの匿名化 (owner: @kimura, due: 2026-04-30)"]);

    // Case and spacing do not matter; an unknown team reports nothing of its
    // own but still lists the known ones.
    assert_eq!(status(&checklists(), TODAY, Some("  MEDICAL ")).teams.len(), 2);
    let none = status(&checklists(), TODAY, Some("finance"));
    assert_eq!(none.teams.iter().map(|t| t.team.as_str()).collect::<Vec<_>>(), ["all"]);
    assert_eq!(none.known_teams.len(), 3);
    let all = status(&checklists(), TODAY, Some("all"));
    assert_eq!((all.teams.len(), all.totals.total), (1, 2));
    // Due today is not overdue yet.
    let s = status(&checklists(), date!(2026 - 04 - 30), Some("voicedrive"));
    assert_eq!(s.teams[1].totals.overdue, 0);
}

#[test]
fn status_serializes_for_the_tool() {
    let s = status(&checklists(), TODAY, Some("medical"));
    let json = serde_json::to_value(&s).expect("serializes");
    assert_eq!(json["teams"][1]["team"], "medical");
    assert_eq!(json["teams"][1]["checklists"][0]["counts"]["percent"], 37.5);
    assert_eq!(json["teams"][1]["checklists"][0]["open_tasks"][3]["days_overdue"], 16);
    let schema = serde_json::to_value(schemars::schema_for!(ComplianceStatus)).expect("schema");
    assert!(schema["properties"]["teams"].is_object(), "{schema}");
}

/// (markdown, expected tasks as (done, text, owner, due), expected warning
/// count).
type Case<'a> = (&'a str, &'a [(bool, &'a str, Option<&'a str>, Option<Date>)], usize);

#[test]
fn task_syntax_and_metadata() {
    let cases: &[Case<'_>] = &[
        ("- [ ] plain", &[(false, "plain", None, None)], 0),
        ("* [x] star done", &[(true, "star done", None, None)], 0),
        ("+ [X] plus done", &[(true, "plus done", None, None)], 0),
        ("12) [ ] ordered", &[(false, "ordered", None, None)], 0),
        ("\t- [ ]\ttabs\t", &[(false, "tabs", None, None)], 0),
        ("- [　] ideographic space", &[(false, "ideographic space", None, None)], 0),
        (
            "- [ ] Owner: @Sato Due: 2026-07-01",
            &[(false, "Owner: @Sato Due: 2026-07-01", Some("Sato"), Some(date!(2026 - 07 - 01)))],
            0,
        ),
        (
            "- [ ] 期限：2026/7/1 担当：＠佐藤",
            &[(false, "期限：2026/7/1 担当：＠佐藤", Some("佐藤"), Some(date!(2026 - 07 - 01)))],
            0,
        ),
        (
            "- [ ] (due: 2026-07-01; owner: @a) (due: 2027-01-01)",
            &[(false, "(due: 2026-07-01; owner: @a) (due: 2027-01-01)", Some("a"), Some(date!(2026 - 07 - 01)))],
            0,
        ),
        (
            "- [ ] overdue: is not a key, residue: neither",
            &[(false, "overdue: is not a key, residue: neither", None, None)],
            0,
        ),
        ("- [ ] due: 2026-02-30", &[(false, "due: 2026-02-30", None, None)], 1),
        ("- [ ] 期限：２０２６－１２－０１", &[(false, "期限：２０２６－１２－０１", None, None)], 1),
        ("- [ ] due: soon", &[(false, "due: soon", None, None)], 1),
        ("- [ ] due:", &[(false, "due:", None, None)], 0),
        ("- [ ] owner: @", &[(false, "owner: @", None, None)], 0),
        ("- [ ] (owner: @佐藤", &[(false, "(owner: @佐藤", Some("佐藤"), None)], 0),
        ("- [x]", &[], 1),
        ("-[ ] no space after the bullet", &[], 0),
        ("- [ ]no space after the box", &[], 0),
        ("- [-] not a GFM box", &[], 0),
        ("- [", &[], 0),
        ("- [ x] odd", &[], 0),
        ("- plain item", &[], 0),
        ("1234567890. [ ] too many digits", &[], 0),
        ("    # indented code, not a title\n- [ ] still a task", &[(false, "still a task", None, None)], 0),
        ("```\n- [ ] in an unclosed fence", &[], 0),
        ("~~~~\n- [ ] a\n~~~\n- [ ] b\n~~~~\n- [ ] c", &[(false, "c", None, None)], 0),
        ("<!-- - [ ] one-line comment -->\n- [ ] after", &[(false, "after", None, None)], 0),
        ("<!--\n- [ ] in an unclosed comment", &[], 0),
        ("\u{feff}- [ ] after a byte order mark", &[(false, "after a byte order mark", None, None)], 0),
        ("- [ ] ends with CR\r\n- [x] next\r\n", &[(false, "ends with CR", None, None), (true, "next", None, None)], 0),
    ];
    for (markdown, expect, warnings) in cases {
        let c = parse_checklist("t.md", markdown);
        let got: Vec<(bool, &str, Option<&str>, Option<Date>)> =
            c.tasks.iter().map(|t| (t.done, t.text.as_str(), t.owner.as_deref(), t.due)).collect();
        assert_eq!(got, *expect, "{markdown:?}");
        assert_eq!(c.warnings.len(), *warnings, "{markdown:?}: {:?}", c.warnings);
    }
}

#[test]
fn headings_name_teams() {
    let cases = [
        ("## medical", "medical"),
        ("## Team: VoiceDrive", "VoiceDrive"),
        ("## team：VoiceDrive", "VoiceDrive"),
        ("## チーム: 医療", "医療"),
        ("## 医療チーム", "医療チーム"),
        ("## 医療チーム {#medical}", "medical"),
        ("## Team: {#x y}", "{#x y}"),
        ("  ## closed ##", "closed"),
        ("## C#", "C#"),
        ("##\tTabbed", "Tabbed"),
    ];
    for (heading, team) in cases {
        let c = parse_checklist("t.md", &format!("{heading}\n- [ ] task"));
        assert_eq!(c.tasks[0].team, team, "{heading:?}");
    }
    let c = parse_checklist("t.md", "# Title\n## a\n- [ ] x\n# Another part\n- [ ] y\n##\n- [ ] z\n#NoSpace\n- [ ] w");
    assert_eq!(c.title, "Title");
    assert_eq!(c.tasks.iter().map(|t| t.team.as_str()).collect::<Vec<_>>(), ["a", "all", "all", "all"]);
    assert_eq!(c.warnings, ["line 6: empty team heading; tasks go to team all"]);
    assert_eq!(parse_checklist("dir/x.md", "").title, "x");
    assert_eq!(parse_checklist("x.MD", "#").title, "x");
}

/// A tiny deterministic generator (64-bit LCG): no randomness crate needed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }
}

#[test]
fn arbitrary_input_never_panics_and_counts_add_up() {
    const PIECES: &[&str] = &[
        "- [ ] ",
        "- [x] ",
        "* [X]",
        "1. [ ]",
        "[",
        "]",
        "(",
        ")",
        "（",
        "）",
        "owner:",
        "@",
        "@佐藤",
        "due: ",
        "期限：",
        "2026-12-01",
        "2026-02-30",
        "2026年1月2日",
        "9999/99/99",
        "\r\n",
        "\n",
        "\r",
        "\t",
        "  ",
        "# ",
        "## ",
        "### ",
        "####### ",
        "```",
        "~~~",
        "<!--",
        "-->",
        "{#",
        "}",
        "{#med}",
        "医療",
        "🚀",
        "\u{0}",
        "\u{feff}",
        "\u{3000}",
        "x",
        "é",
        "Team:",
        "チーム：",
        ",",
        "、",
        ";",
        "-",
        "*",
        "+",
        "12345678901.",
    ];
    let mut rng = Lcg(0x5eed);
    for round in 0..3000 {
        let mut doc = String::new();
        for _ in 0..rng.next() % 60 {
            doc.push_str(PIECES[rng.next() % PIECES.len()]);
        }
        if round % 7 == 0 {
            // Raw bytes, decoded the way load_dir decodes files.
            let bytes: Vec<u8> = (0..rng.next() % 80).map(|_| (rng.next() % 256) as u8).collect();
            doc.push_str(&String::from_utf8_lossy(&bytes));
        }
        let c = parse_checklist("fuzz.md", &doc);
        let line_count = doc.split('\n').count();
        for task in &c.tasks {
            assert!(task.line >= 1 && task.line <= line_count, "{doc:?}: {task:?}");
            assert!(!task.text.is_empty() && !task.team.is_empty(), "{doc:?}: {task:?}");
        }
        let s = status(std::slice::from_ref(&c), TODAY, None);
        assert_eq!(s.totals.total, c.tasks.len(), "{doc:?}");
        for counts in s.teams.iter().map(|t| t.totals).chain([s.totals]) {
            assert_eq!(counts.done + counts.open, counts.total, "{doc:?}");
            assert!(counts.overdue <= counts.open, "{doc:?}");
            assert!((0.0..=100.0).contains(&counts.percent), "{doc:?}");
        }
        let filtered = status(std::slice::from_ref(&c), TODAY, Some(&doc));
        assert!(filtered.totals.total <= s.totals.total);
    }
}

#[tokio::test]
async fn load_dir_reads_markdown_files_in_order() {
    let dir = std::env::temp_dir().join(format!("plexus-ops-compliance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub.md")).expect("mkdir");
    std::fs::write(dir.join("security.md"), SECURITY).expect("write");
    std::fs::write(dir.join("hipaa.md"), HIPAA).expect("write");
    std::fs::write(dir.join("notes.txt"), "- [ ] not a checklist").expect("write");
    std::fs::write(dir.join("broken.md"), b"- [ ] caf\xe9\n").expect("write");
    let loaded = load_dir(&dir).await.expect("load");
    assert_eq!(loaded.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["broken.md", "hipaa.md", "security.md"]);
    assert_eq!(loaded[0].tasks[0].text, "caf\u{fffd}");
    assert_eq!(loaded[1], parse_checklist("hipaa.md", HIPAA));
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(load_dir(&dir).await.expect("a missing directory is empty").is_empty());
}
