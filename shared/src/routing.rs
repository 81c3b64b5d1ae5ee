//! Which region serves one HTTP request: the home rule of [`crate::home`] applied to a route,
//! its path parameters, the caller's claims and, for a create, its body; and what a region
//! does with a request whose home is elsewhere. The local gateway (`tidewater_local::homing`)
//! and the functions' own hop (`crate::forwarding`, on AWS) both ask [`decide`], so that they
//! never disagree.
//!
//! A forwarded request carries [`FORWARDED_FROM`]; a region that receives one serves it itself
//! when it is home, and refuses it when it is not (the two regions disagree on the home map, as
//! during a failover): a request is never forwarded twice, so no loop can form.
use serde_json::Value;
use uuid::Uuid;

use crate::home::{self, Asker, Homes};
use crate::model::hyphenated_uuid;

/// The header of a forwarded request: the region it came from.
pub const FORWARDED_FROM: &str = "tidewater-forwarded-from";
/// On an answer served from a replica while the home region is unreachable: it may miss what
/// the home acknowledged and has not replicated yet.
pub const STALE: &str = "tidewater-stale";
/// On a forwarded answer: the region that served it.
pub const SERVED_BY: &str = "tidewater-served-by";

/// A request as the home rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// `GET`: a read, which a region may serve from its replica, marked stale.
    pub read: bool,
    /// The route's path template, as in `template.yaml` (`/sessions/{id}/turns`).
    pub route_path: &'a str,
    /// The path parameters, percent-decoded.
    pub parameters: &'a [(String, String)],
    /// The caller's `sub` claim.
    pub customer_id: &'a str,
    /// The caller's groups (`cognito:groups`).
    pub groups: &'a [String],
    pub body: &'a [u8],
    /// Whether it carries [`FORWARDED_FROM`].
    pub forwarded: bool,
}

impl Asked<'_> {
    fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
    }

    fn in_group(&self, names: &[&str]) -> bool {
        self.groups.iter().any(|g| names.contains(&g.as_str()))
    }

    fn session_id(&self) -> Option<Uuid> {
        self.parameter("id").and_then(hyphenated_uuid)
    }
}

/// What a region does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serve {
    /// Serve it here, as it came.
    Here,
    /// Serve it from this region's replica, marked [`STALE`], without `If-None-Match` and
    /// without an `ETag` ([`mark_stale`]): it may lack what its home has not replicated yet.
    HereStale,
    /// Send it, whole and once, to its home region.
    Forward(String),
    /// Refuse it: 503 with `Retry-After` (nothing done, save after [`Refusal::HomeTimedOut`]).
    Refuse(Refusal),
}

/// Why a request is refused with a retryable 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It was forwarded here by a region that took this one for its home, and it is not.
    HomeMoved,
    /// A write on a session a failover fenced ([`crate::home::HomeMap::fenced`]).
    SessionFenced,
    /// The home map cannot be read.
    HomeUnknown,
    /// A write whose home cannot be reached; or a stale read that would state an absence
    /// ([`stale_refusal`]).
    HomeUnavailable,
    /// A write whose home did not answer in time: it may have acted.
    HomeTimedOut,
}

impl Refusal {
    /// The `code` of its `{"code","message"}` body.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::HomeMoved => "home_moved",
            Refusal::SessionFenced => "session_fenced",
            Refusal::HomeUnknown => "home_unknown",
            Refusal::HomeUnavailable => "home_unavailable",
            Refusal::HomeTimedOut => "home_timeout",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::HomeMoved => "this session's home region is changing; retry",
            Refusal::SessionFenced => "this session's last writes are in a region that is down; retry once it is back",
            Refusal::HomeUnknown => "the home map cannot be read",
            Refusal::HomeUnavailable => "this session's home region is unavailable; retry later",
            Refusal::HomeTimedOut => {
                "this session's home region did not answer in time; the request may have been applied: retry it as is (every write is idempotent)"
            }
        }
    }
}

/// What region `here` does with `asked`, given the homes as they are now (or why they cannot
/// be read). When it says [`Serve::Forward`] and the home cannot be reached, [`unreachable`]
/// says what to do instead.
pub fn decide(here: &str, homes: Result<&Homes, &str>, asked: &Asked<'_>) -> Serve {
    if asked.read && home_unknown(asked) {
        // No region can be named home: served from this region's replica, marked stale.
        return Serve::HereStale;
    }
    let Ok(homes) = homes else { return Serve::Refuse(Refusal::HomeUnknown) };
    // A request any region may serve is served here, unless a failover moved every slot of
    // this region away: then it goes where they went, so that nothing is made here.
    let moved_away = || {
        let own = homes.regions.iter().position(|region| region == here)?;
        homes.slot_homed_in(here).is_none().then_some(own as u8)
    };
    let home = request_slot(asked).or_else(moved_away).map(|slot| homes.home_of(slot));
    match home {
        Some(home) if home != here && asked.forwarded => Serve::Refuse(Refusal::HomeMoved),
        Some(home) if home != here => Serve::Forward(home.to_owned()),
        _ if !fenced(homes, asked) => Serve::Here,
        // A fenced session read here lacks what its old home has not delivered yet.
        _ if asked.read => Serve::HereStale,
        _ => Serve::Refuse(Refusal::SessionFenced),
    }
}

/// What to do instead of [`Serve::Forward`] when the home cannot be reached, or (`timed_out`)
/// did not answer in time: a read is served from this region's replica, marked stale; anything
/// else is refused, as [`Refusal::HomeTimedOut`] when the home may have acted.
pub fn unreachable(read: bool, timed_out: bool) -> Serve {
    match (read, timed_out) {
        (true, _) => Serve::HereStale,
        (false, false) => Serve::Refuse(Refusal::HomeUnavailable),
        (false, true) => Serve::Refuse(Refusal::HomeTimedOut),
    }
}

/// What a read served stale ([`Serve::HereStale`]) answers instead of `status`, when `status`
/// would state an absence (404, 410): a replica that lags can say what it holds, never what its
/// home does not hold, so it is refused as [`Refusal::HomeUnavailable`]. `None`: pass it on.
pub fn stale_refusal(status: u16) -> Option<Refusal> {
    matches!(status, 404 | 410).then_some(Refusal::HomeUnavailable)
}

/// The slot whose home serves a request, or `None` when any region may serve it: a receipt
/// (read from the replica), or a guest's create without an id of its own.
pub fn request_slot(asked: &Asked<'_>) -> Option<u8> {
    let customer_id = asked.customer_id;
    let asker = Asker {
        customer_id,
        guest: asked.in_group(&["guest"]),
        staff: asked.in_group(&["support", "privacy"]),
    };
    let route_path = asked.route_path;
    if route_path == "/sessions" {
        if !asker.guest {
            return Some(home::customer_slot(customer_id));
        }
        let chosen = serde_json::from_slice::<Value>(asked.body).ok()?.get("session_id")?.as_str().and_then(hyphenated_uuid)?;
        return Some(home::id_slot(&chosen));
    }
    if route_path.starts_with("/sessions/{id}") {
        // An id that is no UUID is the function's to refuse, here.
        let id = asked.session_id()?;
        return Some(home::session_request_slot(asker, &id));
    }
    if route_path.starts_with("/customers/me") {
        return Some(home::customer_slot(customer_id));
    }
    if route_path.starts_with("/customers/{id}") {
        return asked.parameter("id").map(home::customer_slot);
    }
    None
}

/// Whether the request's home cannot be told from the request: `support` or `privacy` acting
/// on a session whose id carries no slot (a customer's client-chosen id). The owner, whose slot
/// is the home, is in the session's META, which the rule does not read; the region a staff
/// member lands in may hold a lagging replica, so such a read is served there marked stale,
/// never as complete.
pub fn home_unknown(asked: &Asked<'_>) -> bool {
    asked.in_group(&["support", "privacy"])
        && !asked.in_group(&["guest"])
        && asked.route_path.starts_with("/sessions/{id}")
        && asked.session_id().is_some_and(|id| home::carried_slot(&id).is_none())
}

/// Whether a request is on a session a failover fenced (`crate::home::HomeMap::fenced`): its
/// home writes nothing of it until the old home's writes have arrived.
fn fenced(homes: &Homes, asked: &Asked<'_>) -> bool {
    asked.route_path.starts_with("/sessions/{id}") && asked.session_id().is_some_and(|id| homes.map.is_fenced(&id))
}

/// The caller's groups from the `cognito:groups` claim: an array (a token's own claims, as the
/// local authorizer reads them), or a string as API Gateway's JWT authorizer renders it
/// ([`parse_groups`]).
pub fn claim_groups(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(rendered)) => parse_groups(rendered),
        _ => Vec::new(),
    }
}

/// The caller's groups, from `cognito:groups` in the one form the HTTP API's JWT authorizer
/// delivers it: a string, an array claim rendered `[a b]` (the names space-separated inside
/// brackets; Cognito group names cannot hold whitespace, but may hold commas and quotes, so
/// `[acme,privacy]` is the one group `acme,privacy`). The text is never read as JSON: a group
/// named `"privacy"` (quotes included) arrives as `["privacy"]`, and must stay that name.
/// A value without brackets is one group name, taken whole. Roles are granted only on an
/// exact match of a name ([`crate::Caller::has_role`]).
pub fn parse_groups(rendered: &str) -> Vec<String> {
    match rendered.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')) {
        Some(inner) => inner.split_whitespace().map(str::to_owned).collect(),
        None if rendered.is_empty() => Vec::new(),
        None => vec![rendered.to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::home::HomeMap;

    const CHOSEN: &str = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f";

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn by_id(id: &str) -> Vec<(String, String)> {
        vec![("id".to_owned(), id.to_owned())]
    }

    fn asked<'a>(route_path: &'a str, parameters: &'a [(String, String)], customer_id: &'a str, groups: &'a [String], body: &'a [u8]) -> Asked<'a> {
        Asked { read: false, route_path, parameters, customer_id, groups, body, forwarded: false }
    }

    #[test]
    fn a_request_goes_to_the_slot_of_its_customer_session_or_chosen_id() {
        let (none, guest, privacy) = (groups(&[]), groups(&["guest"]), groups(&["privacy"]));
        let no_parameters = Vec::new();
        let slot = |route: &str, parameters: &[(String, String)], sub: &str, groups: &[String], body: &[u8]| {
            request_slot(&asked(route, parameters, sub, groups, body))
        };
        let alice_slot = Some(home::customer_slot("alice"));
        assert_eq!(slot("/sessions", &no_parameters, "alice", &none, b"{}"), alice_slot);
        assert_eq!(slot("/sessions", &no_parameters, "guest-7", &guest, b"{}"), None, "a guest's new session is made where it lands");
        let body = json!({"session_id": CHOSEN}).to_string();
        let chosen_slot = Some(home::id_slot(&hyphenated_uuid(CHOSEN).unwrap()));
        assert_eq!(slot("/sessions", &no_parameters, "guest-7", &guest, body.as_bytes()), chosen_slot);
        assert_eq!(slot("/sessions/{id}/turns", &by_id(CHOSEN), "alice", &none, b""), alice_slot);
        assert_eq!(slot("/sessions/{id}/turns", &by_id(CHOSEN), "guest-7", &guest, b""), chosen_slot);
        assert_eq!(slot("/sessions/{id}", &by_id("not-a-uuid"), "alice", &none, b""), None);
        assert_eq!(slot("/customers/me/sessions", &no_parameters, "alice", &none, b""), alice_slot);
        assert_eq!(slot("/customers/{id}", &by_id("bob"), "pat", &privacy, b""), Some(home::customer_slot("bob")));
        assert_eq!(slot("/receipts/{receipt_id}", &no_parameters, "alice", &none, b""), None);
    }

    #[test]
    fn only_staff_acting_on_an_id_without_a_slot_leave_the_home_unknown() {
        let (support, privacy, none) = (groups(&["support"]), groups(&["privacy"]), groups(&[]));
        let chosen = by_id(CHOSEN);
        let made = by_id(&home::new_session_id(7).to_string());
        assert!(home_unknown(&asked("/sessions/{id}/context", &chosen, "carol", &support, b"")));
        assert!(home_unknown(&asked("/sessions/{id}", &chosen, "pat", &privacy, b"")));
        assert!(!home_unknown(&asked("/sessions/{id}/context", &made, "carol", &support, b"")), "a server-made id carries its slot");
        assert!(!home_unknown(&asked("/sessions/{id}/context", &chosen, "alice", &none, b"")), "a customer's own slot is known");
        assert!(!home_unknown(&asked("/customers/{id}", &by_id("bob"), "carol", &support, b"")));
    }

    #[test]
    fn a_request_is_served_at_home_forwarded_once_or_refused() {
        let homes = Homes::new("us-east-1,eu-west-1", HomeMap::default()).unwrap();
        let guest = groups(&["guest"]);
        let east_session = by_id(&home::new_session_id(0).to_string());
        let append = asked("/sessions/{id}/turns", &east_session, "guest-7", &guest, b"{}");
        assert_eq!(decide("us-east-1", Ok(&homes), &append), Serve::Here);
        assert_eq!(decide("eu-west-1", Ok(&homes), &append), Serve::Forward("us-east-1".into()));
        // A forwarded request that reaches a region that is not its home is never sent on.
        let forwarded = Asked { forwarded: true, ..append };
        assert_eq!(decide("eu-west-1", Ok(&homes), &forwarded), Serve::Refuse(Refusal::HomeMoved));
        assert_eq!(decide("us-east-1", Ok(&homes), &forwarded), Serve::Here);
        assert_eq!(decide("eu-west-1", Err("unreadable"), &append), Serve::Refuse(Refusal::HomeUnknown));
        // The home unreachable: a read is served here, stale; a write is refused.
        assert_eq!((unreachable(true, false), unreachable(false, false)), (Serve::HereStale, Serve::Refuse(Refusal::HomeUnavailable)));
        // The home too slow: a read is served here, stale; a write is refused as maybe applied.
        assert_eq!((unreachable(true, true), unreachable(false, true)), (Serve::HereStale, Serve::Refuse(Refusal::HomeTimedOut)));
        assert!(Refusal::HomeTimedOut.message().contains("may have been applied"));
    }

    #[test]
    fn a_stale_read_never_states_an_absence() {
        assert_eq!((stale_refusal(404), stale_refusal(410)), (Some(Refusal::HomeUnavailable), Some(Refusal::HomeUnavailable)));
        assert_eq!((stale_refusal(200), stale_refusal(400), stale_refusal(403), stale_refusal(503)), (None, None, None, None));
    }

    #[test]
    fn a_guest_create_is_made_where_it_lands_unless_its_region_moved_away() {
        let guest = groups(&["guest"]);
        let create = asked("/sessions", &[], "guest-7", &guest, b"{}");
        let mut homes = Homes::new("us-east-1,eu-west-1", HomeMap::default()).unwrap();
        assert_eq!(decide("us-east-1", Ok(&homes), &create), Serve::Here);
        homes.fail_over("us-east-1", "eu-west-1");
        assert_eq!(decide("us-east-1", Ok(&homes), &create), Serve::Forward("eu-west-1".into()));
    }

    #[test]
    fn a_fenced_session_is_read_stale_and_written_nowhere_and_staff_on_an_unknown_home_read_stale() {
        let session = home::new_session_id(0);
        let fenced = HomeMap { fenced: BTreeMap::from([(session.to_string(), "eu-west-1".to_owned())]), ..HomeMap::default() };
        let homes = Homes::new("us-east-1,eu-west-1", fenced).unwrap();
        let (guest, support) = (groups(&["guest"]), groups(&["support"]));
        let parameters = by_id(&session.to_string());
        let write = asked("/sessions/{id}/turns", &parameters, "guest-7", &guest, b"");
        assert_eq!(decide("us-east-1", Ok(&homes), &write), Serve::Refuse(Refusal::SessionFenced));
        assert_eq!(decide("us-east-1", Ok(&homes), &Asked { read: true, ..write }), Serve::HereStale);
        let chosen = by_id(CHOSEN);
        let staff_read = Asked { read: true, ..asked("/sessions/{id}/context", &chosen, "carol", &support, b"") };
        assert_eq!(decide("eu-west-1", Ok(&homes), &staff_read), Serve::HereStale);
    }

    #[test]
    fn groups_come_from_an_array_claim_or_a_rendered_one_alike() {
        assert_eq!(claim_groups(Some(&json!(["support", "privacy"]))), ["support", "privacy"]);
        assert_eq!(claim_groups(Some(&json!("[support privacy]"))), ["support", "privacy"]);
        assert_eq!(claim_groups(Some(&json!("[acme,privacy]"))), ["acme,privacy"]);
        assert!(claim_groups(None).is_empty());
    }
}
