//! The demo's shared documents: what the two teams of the issue share on
//! day one. Written only where a file does not exist yet, so a demo
//! directory that someone has edited keeps their edits.

use std::path::Path;

/// `(name, content)` of every demo document.
pub const DOCUMENTS: &[(&str, &str)] = &[
    (
        "schemas/interview-types.schema.json",
        r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Interview types shared by the medical staff system and VoiceDrive",
  "type": "array",
  "items": {
    "type": "object",
    "required": ["id", "name", "classification"],
    "additionalProperties": false,
    "properties": {
      "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
      "name": {"type": "string", "minLength": 1},
      "classification": {"enum": ["regular", "special", "follow_up"]}
    }
  },
  "uniqueItems": true
}
"#,
    ),
    (
        "config/interview-types.json",
        r#"[
  {"id": "regular", "name": "定期面談", "classification": "regular"},
  {"id": "return_to_work", "name": "復職面談", "classification": "special"},
  {"id": "follow_up", "name": "フォローアップ面談", "classification": "follow_up"}
]
"#,
    ),
    (
        "config/feature-flags.json",
        r#"{
  "ai_assistant": {"enabled": true, "rollout": 10, "teams": ["medical", "voicedrive"], "description": "AI 面談アシスタント"},
  "voice_transcription": {"enabled": true, "teams": ["voicedrive"]},
  "new_dashboard": {"enabled": false}
}
"#,
    ),
    (
        "config/alert-rules.json",
        r#"{
  "rules": [
    {"name": "high-error-rate", "metric": "error_rate", "op": ">", "threshold": "1%", "for": "5m", "severity": "sev2", "open_incident": true, "teams": ["medical", "voicedrive"], "description": "エラー率が 5 分間 1% を超えています"},
    {"name": "slow-calls", "metric": "latency_p99_ms", "op": ">", "threshold": "500ms", "for": "10m", "severity": "sev3"}
  ]
}
"#,
    ),
    ("config/access-control.json", "{\n  \"admin_users\": [],\n  \"readonly_users\": [],\n  \"blocked_ips\": []\n}\n"),
    (
        "compliance/hipaa-2026.md",
        "# 個人情報保護・HIPAA チェックリスト 2026\n\n## medical\n- [x] 監査ログの保管期間を 6 年に設定 (owner: @sato)\n- [ ] 退職者アカウントの棚卸し (期限: 2026-12-15)\n\n## voicedrive\n- [x] 音声データの暗号化 (AES-256)\n- [ ] 録音データの保持ポリシー見直し due: 2026-12-01\n",
    ),
    (
        "security/2026-11-advisory.md",
        "# Security advisory: rotate VoiceDrive API keys\n\nStatus: open\nSeverity: high\n\nThe VoiceDrive build server logged API keys in plain text until 2026-11-18. Rotate every key issued before that date.\n",
    ),
    (
        "alerts/maintenance-2026-11-30.md",
        "# 計画メンテナンス / Planned maintenance\n\nStatus: scheduled\nWhen: 2026-11-30 02:00-04:00 JST\n\nデータベースのバージョンアップのため、勤怠・給与連携を停止します。\n",
    ),
];

/// Write the demo documents into `root` where they are missing.
pub async fn seed(root: &Path) -> std::io::Result<()> {
    for (name, content) in DOCUMENTS {
        let path = root.join(name);
        if tokio::fs::try_exists(&path).await? {
            continue;
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::write(&path, content).await?;
    }
    Ok(())
}
