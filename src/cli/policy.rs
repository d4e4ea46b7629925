//! `forewarm policy`: read, write, check and list policy items. The
//! commands' work is done over [`AdminStore`], so the in-memory store
//! answers for DynamoDB in its tests.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::aws::{config, runtime};
use crate::aws::controller;
use crate::decision::policy::{self, Policy, PolicyDoc, Scalar};
use crate::ports::{AdminStore, FunctionRef};

/// `forewarm policy ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Show a function's policy item and the merged result with defaults.
    Get {
        /// The function (`*` for the account defaults).
        function: String,
        #[command(flatten)]
        table: super::aws::TableArg,
    },
    /// Validate, then write a policy item (from --file and/or key=value pairs).
    Put {
        /// The function (`*` for the account defaults).
        function: String,
        /// Attributes as key=value (e.g. max=40 quantile=0.9).
        pairs: Vec<String>,
        /// A JSON object of attributes.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        table: super::aws::TableArg,
    },
    /// Check a policy (a JSON file, or key=value pairs) without writing it.
    Validate {
        /// Attributes as key=value.
        pairs: Vec<String>,
        /// A JSON object of attributes.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List every policy item.
    List {
        #[command(flatten)]
        table: super::aws::TableArg,
    },
}

/// What a command has to say: warnings (for stderr) and its answer.
#[derive(Debug, Default, PartialEq)]
struct Said {
    warnings: Vec<String>,
    text: String,
}

impl Said {
    fn print(self) {
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        if !self.text.is_empty() {
            println!("{}", self.text);
        }
    }
}

/// Runs `forewarm policy ...`.
pub(super) fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Validate { pairs, file } => {
            let doc = pairs_doc(&pairs, file.as_ref())?;
            validate(&doc)?.print();
            Ok(())
        }
        PolicyCommand::Put {
            function,
            pairs,
            file,
            table,
        } => {
            let cfg = config(&table)?;
            let doc = pairs_doc(&pairs, file.as_ref())?;
            runtime()?
                .block_on(async {
                    let ports = controller::ports(&cfg).await;
                    put(&ports.store, &function, &doc, &cfg.table).await
                })?
                .print();
            Ok(())
        }
        PolicyCommand::Get { function, table } => {
            let cfg = config(&table)?;
            runtime()?
                .block_on(async {
                    let ports = controller::ports(&cfg).await;
                    get(&ports.store, &function, &cfg.table).await
                })?
                .print();
            Ok(())
        }
        PolicyCommand::List { table } => {
            let cfg = config(&table)?;
            runtime()?
                .block_on(async {
                    let ports = controller::ports(&cfg).await;
                    list(&ports.store).await
                })?
                .print();
            Ok(())
        }
    }
}

fn validate(doc: &PolicyDoc) -> anyhow::Result<Said> {
    let parsed = Policy::from_doc(doc)?;
    Ok(Said {
        warnings: parsed.warnings.iter().map(ToString::to_string).collect(),
        text: format!(
            "valid; with defaults:\n{}",
            show_doc(&parsed.policy.to_doc())
        ),
    })
}

/// Checks `doc` as `function`'s policy over the stored defaults (or as the
/// defaults, under every stored policy), then writes it.
async fn put<S: AdminStore>(
    store: &S,
    function: &str,
    doc: &PolicyDoc,
    table: &str,
) -> anyhow::Result<Said> {
    if function != "*" {
        FunctionRef::check_key(function).map_err(|e| anyhow::anyhow!("not written: {e}"))?;
    }
    let defaults = if function == "*" {
        None
    } else {
        store.get_policy("*").await?
    };
    let parsed = Policy::from_items(defaults.as_ref(), doc)
        .map_err(|e| anyhow::anyhow!("not written: {e}"))?;
    let mut warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    if function == "*" {
        // New defaults merge under every function's policy: say which of
        // them they would make invalid (the next tick would skip those
        // functions).
        for item in store.list_policies().await? {
            if item.pk == "*" || item.key_problem.is_some() {
                continue;
            }
            if let Err(e) = Policy::from_items(Some(doc), &item.doc) {
                warnings.push(format!(
                    "with these defaults the policy of {} is invalid: {e}",
                    item.pk
                ));
            }
        }
    }
    store.put_policy(function, doc).await?;
    Ok(Said {
        warnings,
        text: format!(
            "wrote policy for {function} to {table}; in effect, with defaults:\n{}",
            show_doc(&parsed.policy.to_doc())
        ),
    })
}

/// A policy item and what is in effect with the defaults.
async fn get<S: AdminStore>(store: &S, function: &str, table: &str) -> anyhow::Result<Said> {
    let Some(doc) = store.get_policy(function).await? else {
        bail!("no policy item for {function} in {table}");
    };
    let defaults = if function == "*" {
        None
    } else {
        store.get_policy("*").await?
    };
    let effect = match Policy::from_items(defaults.as_ref(), &doc) {
        Ok(p) => format!(
            "in effect, with defaults:\n{}",
            show_doc(&p.policy.to_doc())
        ),
        Err(e) => format!("INVALID: {e}"),
    };
    Ok(Said {
        warnings: Vec::new(),
        text: format!("item:\n{}\n{effect}", show_doc(&doc)),
    })
}

/// Every policy item, each judged on its own.
async fn list<S: AdminStore>(store: &S) -> anyhow::Result<Said> {
    let lines: Vec<String> = store
        .list_policies()
        .await?
        .into_iter()
        .map(|item| {
            let verdict = match (item.key_problem, Policy::from_doc(&item.doc)) {
                (Some(why), _) => format!("INVALID: {why}"),
                (None, Ok(_)) => "ok".to_string(),
                (None, Err(e)) => format!("INVALID: {e}"),
            };
            let attrs: Vec<String> = item.doc.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{:<32} {verdict:<8} {}", item.pk, attrs.join(" "))
        })
        .collect();
    Ok(Said {
        warnings: Vec::new(),
        text: lines.join("\n"),
    })
}

pub(super) fn pairs_doc(pairs: &[String], file: Option<&PathBuf>) -> anyhow::Result<PolicyDoc> {
    let mut doc = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            policy::doc_from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => PolicyDoc::new(),
    };
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("`{p}` must look like key=value"))?;
        doc.insert(k.trim().to_string(), Scalar::from_text(v));
    }
    // From key=value pairs or a file alike: a nameless attribute is a typo.
    if let Some(k) = doc.keys().find(|k| k.trim().is_empty()) {
        bail!("an attribute name is empty ({k:?})");
    }
    Ok(doc)
}

fn show_doc(doc: &PolicyDoc) -> String {
    doc.iter()
        .map(|(k, v)| format!("  {k} = {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryStore;
    use crate::tick::block_on_ready;

    fn doc(pairs: &[(&str, f64)]) -> PolicyDoc {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Scalar::Num(*v)))
            .collect()
    }

    #[test]
    fn new_defaults_that_break_a_policy_are_written_with_a_warning_naming_it() {
        let store = MemoryStore::new();
        let orders = FunctionRef::unqualified("orders");
        store.put_policy(&orders, doc(&[("max", 5.0)]));
        let said = block_on_ready(put(&store, "*", &doc(&[("min", 10.0)]), "t")).unwrap();
        assert_eq!(said.warnings.len(), 1, "{said:?}");
        assert!(
            said.warnings[0].contains("policy of orders is invalid")
                && said.warnings[0].contains("max (5) is below min (10)"),
            "{said:?}"
        );
        assert!(said.text.starts_with("wrote policy for * to t"), "{said:?}");
        assert_eq!(
            block_on_ready(AdminStore::get_policy(&store, "*")).unwrap(),
            Some(doc(&[("min", 10.0)]))
        );
    }

    #[test]
    fn a_policy_invalid_over_the_defaults_is_refused_and_nothing_written() {
        let store = MemoryStore::new();
        store.put_defaults(doc(&[("min", 10.0)]));
        let e = block_on_ready(put(&store, "orders", &doc(&[("max", 5.0)]), "t")).unwrap_err();
        assert!(e.to_string().starts_with("not written: "), "{e}");
        assert_eq!(
            block_on_ready(AdminStore::get_policy(&store, "orders")).unwrap(),
            None
        );
        let e = block_on_ready(put(&store, " orders", &doc(&[]), "t")).unwrap_err();
        assert!(e.to_string().contains("did you mean \"orders\""), "{e}");
    }

    #[test]
    fn get_shows_the_item_and_what_is_in_effect_and_list_judges_each() {
        let store = MemoryStore::new();
        store.put_defaults(doc(&[("max", 20.0)]));
        store.put_policy(&FunctionRef::unqualified("orders"), doc(&[("min", 2.0)]));
        store.put_policy(
            &FunctionRef::unqualified("broken"),
            doc(&[("min", 9.0), ("max", 3.0)]),
        );
        let said = block_on_ready(get(&store, "orders", "t")).unwrap();
        assert!(said.text.contains("  min = 2"), "{}", said.text);
        assert!(said.text.contains("in effect") && said.text.contains("max = 20"));
        let e = block_on_ready(get(&store, "absent", "t")).unwrap_err();
        assert_eq!(e.to_string(), "no policy item for absent in t");
        let listed = block_on_ready(list(&store)).unwrap().text;
        let line = |pk: &str| {
            listed
                .lines()
                .find(|l| l.split_whitespace().next() == Some(pk))
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            line("broken").contains("INVALID: invalid policy: max (3) is below min (9)"),
            "{listed}"
        );
        assert!(line("orders").contains(" ok "), "{listed}");
        assert!(line("*").contains("max=20"), "{listed}");
    }
}
