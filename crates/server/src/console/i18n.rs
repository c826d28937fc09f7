//! The console's words in English and Japanese. Every string is a field of
//! [`Text`], so a page cannot name one that a language lacks.

/// The console's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Ja,
}

impl Lang {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    /// From the language cookie, else the browser's first preference (ja or en).
    pub(crate) fn of(headers: &axum::http::HeaderMap) -> Self {
        if let Some(l) = super::session::cookie(headers, super::session::LANG_COOKIE).and_then(Lang::parse) {
            return l;
        }
        let accept = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        match accept.split(',').next().map(|l| l.trim().to_ascii_lowercase()) {
            Some(l) if l.starts_with("ja") => Lang::Ja,
            _ => Lang::En,
        }
    }

    pub(crate) fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::Ja => &JA,
        }
    }
}

macro_rules! strings {
    ($($key:ident => $en:literal, $ja:literal;)*) => {
        /// Every string of the console.
        pub(crate) struct Text { $(pub(crate) $key: &'static str,)* }
        const EN: Text = Text { $($key: $en,)* };
        const JA: Text = Text { $($key: $ja,)* };
    };
}

strings! {
    console => "Console", "コンソール";
    nav_overview => "Overview", "概要";
    nav_incidents => "Incidents", "インシデント";
    signed_in_as => "Signed in as", "サインイン中:";
    sign_out => "Sign out", "サインアウト";
    sign_in => "Sign in", "サインイン";
    sign_in_intro => "Sign in with an API key. The console calls the same tools as MCP clients, with your key: your role decides what you see and may change, and every action is audited.", "API キーでサインインします。コンソールは MCP クライアントと同じツールをあなたのキーで呼び出します。表示・変更できる範囲はロールで決まり、すべての操作は監査ログに記録されます。";
    api_key => "API key", "API キー";
    sign_in_invalid => "This API key was not accepted.", "この API キーは受け付けられませんでした。";
    sign_in_with => "Sign in with", "サインイン:";
    or_api_key => "or with an API key:", "または API キーで:";
    sign_in_missing => "Enter an API key.", "API キーを入力してください。";
    session_expired => "Your session has expired. Sign in again.", "セッションの有効期限が切れました。もう一度サインインしてください。";
    other_language => "日本語", "English";
    uptime => "Uptime", "稼働時間";
    request_rate => "Requests/s (last minute)", "リクエスト/秒（直近 1 分）";
    error_rate => "Error rate (last hour)", "エラー率（直近 1 時間）";
    calls_last_hour => "Calls (last hour)", "呼び出し数（直近 1 時間）";
    in_flight => "In flight", "処理中";
    audit_queue => "Audit queue", "監査キュー";
    latency_all => "Latency of all calls, per minute (ms)", "全呼び出しのレイテンシ（1 分ごと、ms）";
    latency_per_tool => "Latency per tool, last hour", "ツールごとのレイテンシ（直近 1 時間）";
    tool => "Tool", "ツール";
    calls => "Calls", "呼び出し";
    errors => "Errors", "エラー";
    no_calls => "No calls in the last hour.", "直近 1 時間に呼び出しはありません。";
    minutes_ago => "60 min ago", "60 分前";
    now => "now", "現在";
    active_alerts => "Active alerts", "発生中のアラート";
    no_alerts => "No active alerts.", "発生中のアラートはありません。";
    open_incidents => "Open incidents", "対応中のインシデント";
    no_incidents => "No incidents.", "インシデントはありません。";
    not_permitted => "Your role does not include this.", "あなたのロールではこの操作はできません。";
    figures_operators => "Server figures are shown to roles that may read the ops metrics (get_ops_metrics).", "サーバーの数値は運用メトリクス（get_ops_metrics）を読めるロールに表示されます。";
    incidents_title => "Incidents", "インシデント";
    new_incident => "Open an incident", "インシデントを起票";
    severity => "Severity", "重大度";
    title => "Title", "タイトル";
    teams => "Teams (comma-separated)", "チーム（カンマ区切り）";
    note => "Note", "メモ";
    status => "Status", "状態";
    create => "Open incident", "起票する";
    update => "Update", "更新";
    timeline => "Timeline", "タイムライン";
    opened => "Opened", "起票";
    updated_at => "Updated", "更新";
    banner_open => "Open incident", "対応中のインシデント";
    refused => "Refused", "拒否されました";
    live => "Live", "ライブ";
    nav_flags => "Flags", "フラグ";
    nav_config => "Config", "設定";
    nav_audit => "Audit", "監査";
    flags_title => "Feature flags", "機能フラグ";
    flag => "Flag", "フラグ";
    description => "Description", "説明";
    enabled => "Enabled", "有効";
    on => "on", "オン";
    off => "off", "オフ";
    rollout => "Rollout %", "ロールアウト %";
    targeting => "Targeting", "対象";
    everyone => "everyone", "全員";
    turn_on => "Turn on", "オンにする";
    turn_off => "Turn off", "オフにする";
    save => "Save", "保存";
    confirm_title => "Confirm the change", "変更の確認";
    confirm_toggle_on => "Turn this flag on for everyone it targets?", "このフラグを対象の全員に対してオンにしますか？";
    confirm_toggle_off => "Turn this flag off for everyone?", "このフラグを全員に対してオフにしますか？";
    confirm => "Confirm", "確定";
    cancel => "Cancel", "キャンセル";
    flags_unleash => "This document uses Unleash's own format: edit it in the config registry.", "この文書は Unleash 形式です。設定レジストリで編集してください。";
    no_flags => "No flags are defined.", "フラグは定義されていません。";
    tester => "Evaluation tester", "評価テスト";
    user_id => "User id", "ユーザー ID";
    team => "Team", "チーム";
    environment => "Environment", "環境";
    evaluate => "Evaluate", "評価する";
    value => "Value", "値";
    reason => "Reason", "理由";
    variant => "Variant", "バリアント";
    config_title => "Config registry", "設定レジストリ";
    document => "Document", "文書";
    version => "Version", "版";
    format => "Format", "形式";
    author => "Author", "作成者";
    time => "Time", "時刻";
    source => "Source", "変更元";
    problems => "Refused edits", "拒否された編集";
    history => "Versions", "版の履歴";
    live_version => "live", "現行";
    roll_back => "Roll back to this version", "この版に戻す";
    content => "Content", "内容";
    no_documents => "No documents.", "文書はありません。";
    audit_title => "Audit log", "監査ログ";
    audit_scope => "Records of your tenant; newest first, at most 200.", "あなたのテナントの記録（新しい順、最大 200 件）。";
    audit_scope_all => "Records of every tenant, or of the tenant named; newest first, at most 200.", "全テナント、または指定したテナントの記録（新しい順、最大 200 件）。";
    principal => "Principal", "主体";
    outcome => "Outcome", "結果";
    from => "From", "開始";
    to => "To", "終了";
    search => "Search", "検索";
    export_csv => "Export CSV", "CSV をエクスポート";
    export_range => "Export the days from … to … (inclusive) as CSV", "指定期間（両端を含む）を CSV でエクスポート";
    no_records => "No records match.", "該当する記録はありません。";
    verify_chain => "Verify the hash chain", "ハッシュチェーンを検証";
    chain_intact => "Intact: every record is in place and unaltered.", "完全です。すべての記録が揃っており、改ざんはありません。";
    chain_broken => "BROKEN: records were altered, removed or reordered.", "破損しています。記録の改ざん・削除・並べ替えがあります。";
    records => "Records", "記録数";
    head => "Head hash", "先頭ハッシュ";
    nav_tenants => "Tenants", "テナント";
    tenants_title => "Tenants", "テナント";
    tenant => "Tenant", "テナント";
    name => "Name", "名前";
    tier => "Tier", "プラン";
    active => "Active", "有効";
    suspended => "suspended", "停止中";
    per_principal => "Per principal (calls/s, burst)", "主体ごと（呼び出し/秒、バースト）";
    per_tenant => "Per tenant (calls/s, burst)", "テナントごと（呼び出し/秒、バースト）";
    rate_limited => "Rate-limited", "レート制限";
    unlimited => "unlimited", "無制限";
    module_knowledge => "Knowledge", "ナレッジ";
    module_health => "Health", "医療";
    module_trading => "Trading", "トレーディング";
    module_learning => "Learning", "学習";
    kind => "Kind", "種類";
    last_sync => "Last sync", "最終同期";
    never => "not since the start", "起動以降なし";
    live_search => "searched live", "ライブ検索";
    indexed => "indexed", "索引";
    unchanged => "unchanged", "変更なし";
    deleted => "deleted", "削除";
    skipped => "skipped", "スキップ";
    sync_now => "Sync now", "今すぐ同期";
    no_phi => "Counts only: this page shows no patient data.", "件数のみ。このページに患者データは表示されません。";
    resource_type => "Resource type", "リソース種別";
    stored => "Stored", "保存数";
    total => "Total", "合計";
    fhir_servers => "FHIR servers", "FHIR サーバー";
    order_books => "Order books", "板情報";
    bid => "Bid", "買気配";
    ask => "Ask", "売気配";
    bid_qty => "Bid qty", "買数量";
    ask_qty => "Ask qty", "売数量";
    positions => "Positions", "ポジション";
    no_portfolios => "No portfolio you may use.", "利用できるポートフォリオはありません。";
    symbol => "Symbol", "銘柄";
    quantity => "Quantity", "数量";
    average_price => "Average price", "平均価格";
    mark => "Mark", "評価価格";
    unrealized => "Unrealized P&L", "評価損益";
    realized => "Realized P&L", "実現損益";
    learners => "Learners", "学習者";
    answers => "Answers", "解答数";
    accuracy => "Accuracy", "正答率";
    skill => "Skill", "スキル";
    mean_mastery => "Mean mastery", "平均習熟度";
    mastered => "Mastered", "習熟済み";
    usage_since => "Usage since the server started.", "使用量はサーバー起動以降のものです。";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_cookie_then_the_browser() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                m.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            m
        };
        assert_eq!(Lang::of(&h(&[])), Lang::En);
        assert_eq!(Lang::of(&h(&[("accept-language", "ja-JP,ja;q=0.9,en;q=0.8")])), Lang::Ja);
        assert_eq!(Lang::of(&h(&[("accept-language", "en-US,ja;q=0.5")])), Lang::En);
        assert_eq!(Lang::of(&h(&[("accept-language", "ja"), ("cookie", "plexus_lang=en")])), Lang::En);
        assert_eq!(Lang::of(&h(&[("cookie", "plexus_lang=fr")])), Lang::En);
        assert_ne!(Lang::Ja.text().nav_incidents, Lang::En.text().nav_incidents);
    }
}
