//! The `--demo` corpus: a seeded, generated knowledge base of a fictional
//! consulting firm (English and Japanese Markdown, HTML and text, some
//! documents near-duplicates of others, some for admins only), written as
//! files a filesystem source reads. Same seed, same files.

use std::path::Path;

/// A tiny deterministic generator (SplitMix64): demo data needs repeatable
/// variety, not cryptographic randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const CLIENTS: &[&str] = &["Aoba Bank", "Kitano Logistics", "Sakura Health", "Northwind Retail", "Minato Energy"];
const TOPICS: &[(&str, &str)] = &[
    ("data migration", "データ移行"),
    ("cloud cost review", "クラウドコスト見直し"),
    ("incident response", "障害対応"),
    ("security assessment", "セキュリティ評価"),
    ("customer onboarding", "顧客オンボーディング"),
    ("payment reconciliation", "決済照合"),
    ("supply chain forecast", "需要予測"),
];
const STEPS_EN: &[&str] = &[
    "Agree the scope and the success measures with the client sponsor.",
    "Inventory the systems involved and name an owner for each.",
    "Run a two-week pilot before the full rollout.",
    "Record every decision in the project log with its reason.",
    "Review the risks weekly with the engagement partner.",
    "Hand over runbooks and train the client's operators.",
];
const STEPS_JA: &[&str] = &[
    "クライアントの責任者と範囲と成功基準を合意する。",
    "対象システムを棚卸しし、それぞれの担当者を決める。",
    "本番展開の前に二週間のパイロットを行う。",
    "すべての決定を理由とともにプロジェクトログに記録する。",
    "毎週、リスクをエンゲージメントパートナーと確認する。",
    "運用手順書を引き渡し、クライアントの運用担当者を教育する。",
];

/// Write the demo corpus under `dir` (`public/` for everyone, `partners/`
/// for admins) and return how many files were written.
pub fn generate(dir: &Path, seed: u64) -> std::io::Result<usize> {
    let mut rng = Rng(seed);
    let mut n = 0;
    for sub in ["public", "partners"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    for (i, (en, ja)) in TOPICS.iter().enumerate() {
        for client in CLIENTS {
            let slug = format!("{}-{}", en.replace(' ', "-"), client.split(' ').next().unwrap_or("x").to_lowercase());
            let steps: Vec<&str> = (0..3).map(|_| rng.pick(STEPS_EN)).collect();
            let steps_ja: Vec<&str> = (0..3).map(|_| rng.pick(STEPS_JA)).collect();
            let weeks = 2 + rng.next() % 10;
            let md = format!(
                "# {client}: {en} playbook\n\n## Summary\n\nHow we ran the {en} engagement for {client} in {weeks} weeks.\n\n\
                 ## Steps\n\n1. {}\n2. {}\n3. {}\n\n## 日本語の要約\n\n{client}向けの{ja}の進め方。\n\n- {}\n- {}\n- {}\n",
                steps[0], steps[1], steps[2], steps_ja[0], steps_ja[1], steps_ja[2]
            );
            std::fs::write(dir.join("public").join(format!("{slug}.md")), md)?;
            n += 1;
        }
        // Partners' notes: fees and margins, admins only.
        let margin = 18 + rng.next() % 20;
        let html = format!(
            "<html><head><title>{en}: pricing and margins</title></head><body><main><h1>{en} pricing</h1>\
             <p>Target margin {margin}%. Day rates are confidential to partners.</p>\
             <p>{ja}の価格設定は、パートナーのみ閲覧できます。</p></main></body></html>"
        );
        std::fs::write(dir.join("partners").join(format!("pricing-{i}.html")), html)?;
        n += 1;
    }
    // A near-duplicate pair and a stub, for the quality report.
    let policy = "Expense policy\n\nSubmit receipts within 30 days. Travel is booked through the travel desk. \
                  Meals are reimbursed up to the daily limit of the country you work in.\n";
    std::fs::write(dir.join("public").join("expense-policy.txt"), policy)?;
    std::fs::write(dir.join("public").join("expense-policy-copy.txt"), policy.replace("30 days", "thirty days"))?;
    std::fs::write(dir.join("public").join("todo.txt"), "TODO\n")?;
    Ok(n + 3)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_seed_writes_the_same_corpus() {
        let base = std::env::temp_dir().join(format!("plexus-demo-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        let n = super::generate(&a, 7).unwrap();
        assert_eq!(n, super::TOPICS.len() * (super::CLIENTS.len() + 1) + 3);
        super::generate(&b, 7).unwrap();
        let read = |d: &std::path::Path| std::fs::read_to_string(d.join("public/data-migration-aoba.md")).unwrap();
        assert_eq!(read(&a), read(&b));
        assert!(read(&a).contains("データ移行"));
        let _ = std::fs::remove_dir_all(&base);
    }
}
