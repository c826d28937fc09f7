//! Compliance checklists: Markdown task lists parsed into tasks per team.
