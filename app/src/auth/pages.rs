//! The account pages. Every text a user typed (names, token names, audit diffs) is rendered as a text node, which
//! Leptos escapes; nothing here builds HTML from strings.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::*;
use crate::shell::{described_by, failure, failure_at, failure_besides, invalid, FieldError, FormError, Page};

/// Where to go after signing in: only paths on this site (`/x`, not `//evil.example` or `https://…`). Browsers
/// drop tabs and line breaks anywhere in an address and read `\` as `/`, so `/\t/evil.example` would leave the
/// site: a path with any control character, whitespace or backslash is refused whole.
fn safe_next(next: Option<String>) -> String {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    })
    .unwrap_or_else(|| "/".to_string())
}

/// A full page load, so every part of the page (the user menu included) reflects the new sign-in state.
fn go_to(path: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().set_href(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<Login>::new();
    let query = use_query_map();
    let setup_open = Resource::new(|| (), |_| setup_required());
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            go_to(&safe_next(query.read_untracked().get("next")));
        }
    });
    view! {
        <Page title="Sign in">
            <ActionForm action=action attr:class="form narrow" attr:id="login-form">
                <label>"Username" <input name="username" autocomplete="username" required/></label>
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="current-password" required/>
                </label>
                <FormError error=Signal::derive(move || failure(action.value().get()))/>
                <button type="submit" class="button" disabled=move || action.pending().get()>"Sign in"</button>
            </ActionForm>
            <Suspense>
                {move || Suspend::new(async move {
                    setup_open.await.unwrap_or(false).then(|| view! {
                        <p>"No account exists yet. " <a href="/setup">"Create the first administrator"</a> "."</p>
                    })
                })}
            </Suspense>
        </Page>
    }
}

/// The inputs of a new account (set-up and the administrator's new-user form) whose errors show beside them.
const NEW_ACCOUNT_FIELDS: [&str; 4] = ["setup_token", "username", "display_name", "password"];

#[component]
pub fn SetupPage() -> impl IntoView {
    let action = ServerAction::<Setup>::new();
    let field = move |name| Signal::derive(move || failure_at(action.value().get(), name));
    let (token_error, username_error, display_error, password_error) = (
        field("setup_token"),
        field("username"),
        field("display_name"),
        field("password"),
    );
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            go_to("/");
        }
    });
    view! {
        <Page title="Set up Gantry">
            <p class="lead">
                "Create the first administrator. The setup token is in the server log, printed when Gantry started "
                "without any account."
            </p>
            <ActionForm action=action attr:class="form narrow">
                <label>"Setup token" <input name="setup_token" autocomplete="off" required
                    aria-invalid=invalid(token_error) aria-describedby=described_by(token_error, "setup-token-error")/></label>
                <FieldError id="setup-token-error" error=token_error/>
                <label>"Username" <input name="username" autocomplete="username" required
                    aria-invalid=invalid(username_error) aria-describedby=described_by(username_error, "setup-username-error")/></label>
                <FieldError id="setup-username-error" error=username_error/>
                <label>"Display name" <input name="display_name" autocomplete="name" required
                    aria-invalid=invalid(display_error) aria-describedby=described_by(display_error, "setup-display-name-error")/></label>
                <FieldError id="setup-display-name-error" error=display_error/>
                <label>
                    "Password (at least " {MIN_PASSWORD_CHARS} " characters)"
                    <input type="password" name="password" autocomplete="new-password" required
                        aria-invalid=invalid(password_error) aria-describedby=described_by(password_error, "setup-password-error")/>
                </label>
                <FieldError id="setup-password-error" error=password_error/>
                <FormError error=Signal::derive(move || failure_besides(action.value().get(), &NEW_ACCOUNT_FIELDS))/>
                <button type="submit" class="button">"Create administrator"</button>
            </ActionForm>
        </Page>
    }
}

/// The signed-in user's name and a sign-out button, in the header.
#[component]
pub fn UserMenu() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());
    let sign_out = ServerAction::<Logout>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = sign_out.value().get() {
            go_to("/login");
        }
    });
    // Once the browser has the user, every shown instant switches to their zone (or the browser's own).
    Effect::new(move |_| {
        if let Some(answer) = user.get() {
            crate::time::show_zone(answer.ok().flatten().and_then(|user| user.time_zone));
        }
    });
    view! {
        <div class="user-menu">
            <Suspense>
                {move || Suspend::new(async move {
                    match user.await {
                        Ok(Some(user)) => view! {
                            <a href="/account" class="user-name">{user.display_name}</a>
                            <ActionForm action=sign_out attr:class="inline">
                                <button type="submit" class="link-button">"Sign out"</button>
                            </ActionForm>
                        }.into_any(),
                        _ => view! { <a href="/login">"Sign in"</a> }.into_any(),
                    }
                })}
            </Suspense>
        </div>
    }
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| current_user());
    let change = ServerAction::<ChangePassword>::new();
    let current_error = Signal::derive(move || failure_at(change.value().get(), "current_password"));
    let new_error = Signal::derive(move || failure_at(change.value().get(), "new_password"));
    Effect::new(move |_| {
        if let Some(Ok(())) = change.value().get() {
            // Changing the password ends every session, this one included.
            go_to("/login");
        }
    });
    view! {
        <Page title="My account">
            <Suspense>
                {move || Suspend::new(async move {
                    me.await.ok().flatten().map(|user| view! {
                        <dl class="status">
                            <dt>"Username"</dt><dd>{user.username}</dd>
                            <dt>"Display name"</dt><dd>{user.display_name}</dd>
                            <dt>"Role"</dt><dd>{user.role.as_str()}</dd>
                        </dl>
                        <TimeZoneForm current=user.time_zone/>
                    })
                })}
            </Suspense>
            <section class="card" aria-labelledby="password-title">
                <h2 id="password-title">"Change password"</h2>
                <ActionForm action=change attr:class="form narrow">
                    <label>
                        "Current password"
                        <input type="password" name="current_password" autocomplete="current-password" required
                            aria-invalid=invalid(current_error) aria-describedby=described_by(current_error, "current-password-error")/>
                    </label>
                    <FieldError id="current-password-error" error=current_error/>
                    <label>
                        "New password"
                        <input type="password" name="new_password" autocomplete="new-password" required
                            aria-invalid=invalid(new_error) aria-describedby=described_by(new_error, "new-password-error")/>
                    </label>
                    <FieldError id="new-password-error" error=new_error/>
                    <FormError error=Signal::derive(move || failure_besides(change.value().get(), &["current_password", "new_password"]))/>
                    <button type="submit" class="button">"Change password"</button>
                </ActionForm>
            </section>
            <MyTokens/>
        </Page>
    }
}

/// The zone one reads times in: a name from the time-zone database, or empty for the browser's own.
#[component]
fn TimeZoneForm(current: Option<String>) -> impl IntoView {
    let save = ServerAction::<SetTimeZone>::new();
    let zone_error = Signal::derive(move || failure_at(save.value().get(), "time_zone"));
    Effect::new(move |_| {
        if let Some(Ok(user)) = save.value().get() {
            crate::time::show_zone(user.time_zone);
        }
    });
    // The browser's zone is known only after hydration; the server renders the hint without it.
    let browser = RwSignal::new(None::<String>);
    Effect::new(move |_| browser.set(crate::time::browser_zone()));
    let hint = move || match browser.get() {
        Some(zone) => format!("Empty: this browser's zone ({zone})."),
        None => "Empty: this browser's zone.".to_string(),
    };
    view! {
        <section class="card" aria-labelledby="zone-title">
            <h2 id="zone-title">"Time zone"</h2>
            <p>"Pages show times in this zone, daylight saving time included. " {hint}</p>
            <ActionForm action=save attr:class="form inline-form">
                <label>
                    "Time zone (IANA name, such as Europe/Berlin)"
                    <input name="time_zone" id="time-zone" value=current.unwrap_or_default() autocomplete="off"
                        aria-invalid=invalid(zone_error) aria-describedby=described_by(zone_error, "time-zone-error")/>
                </label>
                <FieldError id="time-zone-error" error=zone_error/>
                <button type="submit" class="button">"Save time zone"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure_besides(save.value().get(), &["time_zone"]))/>
            {move || save.value().get().and_then(Result::ok).map(|user| view! {
                <p class="notice" role="status">
                    {match user.time_zone {
                        Some(zone) => format!("Times are now shown in {zone}."),
                        None => "Times are now shown in this browser's zone.".to_string(),
                    }}
                </p>
            })}
        </section>
    }
}

#[component]
fn MyTokens() -> impl IntoView {
    let create = ServerAction::<CreateMyToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let name_error = Signal::derive(move || failure_at(create.value().get(), "name"));
    let expiry_error = Signal::derive(move || failure_at(create.value().get(), "expires_in_days"));
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| my_tokens(),
    );
    view! {
        <section class="card" aria-labelledby="tokens-title">
            <h2 id="tokens-title">"API tokens"</h2>
            <p>"Scripts and integrations send a token as " <code>"Authorization: Bearer <token>"</code> " and act with your role and grants."</p>
            <ActionForm action=create attr:class="form inline-form">
                <label>"Name" <input name="name" required
                    aria-invalid=invalid(name_error) aria-describedby=described_by(name_error, "token-name-error")/></label>
                <FieldError id="token-name-error" error=name_error/>
                <label>"Expires in days (empty: never)" <input name="expires_in_days" inputmode="numeric"
                    aria-invalid=invalid(expiry_error) aria-describedby=described_by(expiry_error, "token-expiry-error")/></label>
                <FieldError id="token-expiry-error" error=expiry_error/>
                <button type="submit" class="button">"Create token"</button>
            </ActionForm>
            <FormError error=Signal::derive(move || failure_besides(create.value().get(), &["name", "expires_in_days"]))/>
            {move || create.value().get().and_then(Result::ok).map(|created| view! {
                <div class="notice" role="status">
                    <p>"Copy this token now; it will not be shown again:"</p>
                    <code class="secret" id="new-token">{created.secret}</code>
                </div>
            })}
            <Suspense>
                {move || Suspend::new(async move {
                    let tokens = tokens.await.unwrap_or_default();
                    if tokens.is_empty() {
                        return view! { <p class="empty">"You have no API tokens."</p> }.into_any();
                    }
                    view! {
                        <table id="my-tokens">
                            <thead><tr>
                                <th>"Name"</th><th>"Token"</th><th>"Created"</th><th>"Last used"</th>
                                <th>"Expires"</th><th><span class="visually-hidden">"Actions"</span></th>
                            </tr></thead>
                            <tbody>
                                {tokens.into_iter().map(|token| {
                                    let id = token.id;
                                    let revoked = token.revoked_at_ms.is_some();
                                    let row_name = token.name.clone();
                                    view! {
                                        <tr data-token=row_name>
                                            <td>{token.name}</td>
                                            <td><code>{token.prefix}"…"</code></td>
                                            <td>{crate::time::shown(token.created_at_ms)}</td>
                                            <td>{crate::time::shown_or(token.last_used_at_ms, "never")}</td>
                                            <td>{crate::time::shown_or(token.expires_at_ms, "never")}</td>
                                            <td>
                                                {if revoked {
                                                    view! { <span>"revoked"</span> }.into_any()
                                                } else {
                                                    view! {
                                                        <button type="button" class="link-button"
                                                            on:click=move |_| { revoke.dispatch(RevokeToken { id }); }>
                                                            "Revoke"
                                                        </button>
                                                    }.into_any()
                                                }}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                })}
            </Suspense>
        </section>
    }
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let field = move |name| Signal::derive(move || failure_at(create.value().get(), name));
    let (username_error, display_error, password_error) = (field("username"), field("display_name"), field("password"));
    let update = ServerAction::<UpdateUser>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let users = Resource::new(
        move || (create.version().get(), update.version().get()),
        |_| list_users(),
    );
    view! {
        <Page title="Users">
            <p><a href="/admin/audit">"Audit log"</a></p>
            <section class="card" aria-labelledby="new-user-title">
                <h2 id="new-user-title">"New user"</h2>
                <ActionForm action=create attr:class="form inline-form">
                    <label>"Username" <input name="username" required
                        aria-invalid=invalid(username_error) aria-describedby=described_by(username_error, "new-user-username-error")/></label>
                    <FieldError id="new-user-username-error" error=username_error/>
                    <label>"Display name" <input name="display_name" required
                        aria-invalid=invalid(display_error) aria-describedby=described_by(display_error, "new-user-display-name-error")/></label>
                    <FieldError id="new-user-display-name-error" error=display_error/>
                    <label>"Password" <input type="password" name="password" autocomplete="new-password" required
                        aria-invalid=invalid(password_error) aria-describedby=described_by(password_error, "new-user-password-error")/></label>
                    <FieldError id="new-user-password-error" error=password_error/>
                    <label>
                        "Role"
                        <select name="role">
                            {Role::ALL.into_iter().map(|role| view! {
                                <option value=role.as_str() selected=role == Role::Viewer>{role.as_str()}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <button type="submit" class="button">"Create user"</button>
                </ActionForm>
                <FormError error=Signal::derive(move || failure_besides(create.value().get(), &NEW_ACCOUNT_FIELDS))/>
            </section>
            <FormError error=Signal::derive(move || failure(update.value().get()))/>
            <FormError error=Signal::derive(move || failure(reset.value().get()))/>
            {move || reset.value().get().and_then(Result::ok).map(|_| view! {
                <p class="notice" role="status">"The password was reset; that user's sessions have ended."</p>
            })}
            <Suspense fallback=|| view! { <p>"Loading users…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                        Ok(users) => view! { <UserTable users update reset/> }.into_any(),
                    }
                })}
            </Suspense>
        </Page>
    }
}

#[component]
fn UserTable(
    users: Vec<UserView>,
    update: ServerAction<UpdateUser>,
    reset: ServerAction<ResetPassword>,
) -> impl IntoView {
    view! {
        <table id="users">
            <thead><tr>
                <th>"Username"</th><th>"Display name"</th><th>"Role"</th><th>"Asset grants"</th><th>"Status"</th>
                <th>"Last sign-in"</th><th>"Reset password"</th>
            </tr></thead>
            <tbody>
                {users.into_iter().map(|user| {
                    let id = user.id;
                    let enabled = user.enabled;
                    let new_password = RwSignal::new(String::new());
                    let grants_text = if user.whole_plant {
                        WHOLE_PLANT.to_string()
                    } else {
                        user.grants.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                    };
                    let username = user.username.clone();
                    view! {
                        <tr data-username=username>
                            <td>{user.username}</td>
                            <td>{user.display_name}</td>
                            <td>
                                <select
                                    aria-label="Role"
                                    on:change=move |ev| {
                                        if let Ok(role) = Role::parse(&event_target_value(&ev)) {
                                            update.dispatch(UpdateUser { id, patch: UserPatch { role: Some(role), ..UserPatch::default() } });
                                        }
                                    }
                                >
                                    {Role::ALL.into_iter().map(|role| view! {
                                        <option value=role.as_str() selected=role == user.role>{role.as_str()}</option>
                                    }).collect_view()}
                                </select>
                            </td>
                            <td>
                                <input
                                    aria-label="Asset grants"
                                    class="grants"
                                    placeholder="no assets"
                                    value=grants_text
                                    on:change=move |ev| {
                                        match parse_access(&event_target_value(&ev)) {
                                            Some(patch) => {
                                                update.dispatch(UpdateUser { id, patch });
                                            }
                                            None => {
                                                update.value().set(Some(Err(AppError::bad_request(
                                                    "asset grants are asset ids separated by commas, or `all` for the whole plant",
                                                ))));
                                            }
                                        }
                                    }
                                />
                            </td>
                            <td>
                                {if enabled { "active" } else { "disabled" }} " "
                                <button type="button" class="link-button"
                                    on:click=move |_| {
                                        update.dispatch(UpdateUser { id, patch: UserPatch { enabled: Some(!enabled), ..UserPatch::default() } });
                                    }>
                                    {if enabled { "Disable" } else { "Enable" }}
                                </button>
                            </td>
                            <td>{crate::time::shown_or(user.last_login_at_ms, "never")}</td>
                            <td>
                                <form class="inline" on:submit=move |ev| {
                                    ev.prevent_default();
                                    reset.dispatch(ResetPassword { id, new_password: new_password.get_untracked() });
                                    new_password.set(String::new());
                                }>
                                    <input type="password" aria-label="New password" autocomplete="new-password"
                                        prop:value=move || new_password.get()
                                        on:input=move |ev| new_password.set(event_target_value(&ev))/>
                                    <button type="submit" class="link-button">"Reset"</button>
                                </form>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// How the users page writes the whole plant in the grants field.
const WHOLE_PLANT: &str = "all";

/// The grants field as an update: `all` → the whole plant; `"3, 7"` → grants 3 and 7 only; empty → no assets;
/// anything else → `None`.
fn parse_access(text: &str) -> Option<UserPatch> {
    if text.trim().eq_ignore_ascii_case(WHOLE_PLANT) {
        return Some(UserPatch {
            whole_plant: Some(true),
            ..UserPatch::default()
        });
    }
    let grants = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().ok())
        .collect::<Option<Vec<i64>>>()?;
    Some(UserPatch {
        whole_plant: Some(false),
        grants: Some(grants),
        ..UserPatch::default()
    })
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let actor = RwSignal::new(String::new());
    let action = RwSignal::new(String::new());
    let entries = Resource::new(
        move || (actor.get(), action.get()),
        |(actor, action)| {
            let filter = AuditFilter {
                actor: Some(actor.trim().to_string()).filter(|a| !a.is_empty()),
                action: Some(action.trim().to_string()).filter(|a| !a.is_empty()),
                limit: Some(200),
                ..AuditFilter::default()
            };
            audit_log(filter)
        },
    );
    view! {
        <Page title="Audit log">
            <form class="form inline-form" on:submit=|ev| ev.prevent_default()>
                <label>"User" <input prop:value=move || actor.get() on:change=move |ev| actor.set(event_target_value(&ev))/></label>
                <label>"Action" <input placeholder="user.update" prop:value=move || action.get() on:change=move |ev| action.set(event_target_value(&ev))/></label>
            </form>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                        Ok(entries) if entries.is_empty() => view! { <p class="empty">"No entries match."</p> }.into_any(),
                        Ok(entries) => view! {
                            <table id="audit">
                                <thead><tr>
                                    <th>"When"</th><th>"Who"</th><th>"From"</th><th>"Action"</th><th>"Object"</th><th>"Change"</th>
                                </tr></thead>
                                <tbody>
                                    {entries.into_iter().map(|entry| view! {
                                        <tr>
                                            <td>{crate::time::shown(entry.at_ms)}</td>
                                            <td>{entry.actor.unwrap_or_default()}</td>
                                            <td>{entry.source.unwrap_or_default()}</td>
                                            <td>{entry.action}</td>
                                            <td>{entry.target_type}" "{entry.target_id.unwrap_or_default()}</td>
                                            <td><code class="diff">{entry.diff.to_string()}</code></td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </Page>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_stays_on_this_site() {
        assert_eq!(safe_next(Some("/alarms?x=1".into())), "/alarms?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            "/\u{0}/evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(safe_next(Some(bad.into())), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn grants_parse_from_a_list_of_ids_or_all() {
        let access = |text: &str| parse_access(text).map(|p| (p.whole_plant, p.grants));
        assert_eq!(access("3, 7"), Some((Some(false), Some(vec![3, 7]))));
        assert_eq!(
            access("  "),
            Some((Some(false), Some(vec![]))),
            "empty is no assets, not everything"
        );
        assert_eq!(access(" All "), Some((Some(true), None)));
        assert_eq!(access("3, pump"), None);
    }
}
