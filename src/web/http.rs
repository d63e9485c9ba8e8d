//! Requests and responses as plain data, and the routing table, sans I/O: the server edge turns
//! hyper's request into a [`Request`] (its body already read within the limit) and a
//! [`Response`] back into hyper's.

/// What the pages and the API need of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The client's address (none in tests of the pure parts).
    pub peer: Option<std::net::IpAddr>,
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub cookie: String,
    pub content_type: String,
    /// `X-CSRF-Token`, for the JSON API's writes.
    pub csrf_header: String,
    /// `Origin` and `Host`: a write whose Origin names another host is refused.
    pub origin: String,
    pub host: String,
    /// `Authorization`: Prometheus' bearer token for `/metrics`.
    pub authorization: String,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Further headers: Location, Set-Cookie, Retry-After, Cache-Control.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
/// Prometheus' text exposition format.
pub const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";
pub const JS: &str = "text/javascript; charset=utf-8";
pub const PNG: &str = "image/png";

/// Headers every response carries: nothing from elsewhere, no framing, no sniffing.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    // Not `no-referrer`: with it, browsers send `Origin: null` on this site's own forms.
    ("referrer-policy", "same-origin"),
];

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: vec![("cache-control", "no-store".into())],
            body: body.into(),
        }
    }

    pub fn html(status: u16, body: String) -> Self {
        Response::new(status, HTML, body)
    }

    pub fn json(status: u16, body: String) -> Self {
        Response::new(status, JSON, body)
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status, TEXT, body.into())
    }

    /// 303 See Other: after a form, the browser asks for `location` with GET.
    pub fn redirect(location: &str) -> Self {
        let mut r = Response::new(303, TEXT, format!("see {location}\n"));
        r.headers.push(("location", location.to_string()));
        r
    }

    /// An embedded asset: cached for a day (names carry no version; a day is short enough).
    pub fn asset(content_type: &'static str, body: &'static [u8]) -> Self {
        let mut r = Response::new(200, content_type, body);
        r.headers = vec![("cache-control", "public, max-age=86400".into())];
        r
    }

    pub fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every page, API call and asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: each UPS, the upsd connections, the last events.
    Status,
    /// `GET /status/live`: the part of the status page that refreshes itself.
    StatusLive,
    LoginForm,
    Login,
    /// `POST /login/setup`: the first admin password, with the setup code.
    FirstPassword,
    Logout,
    SetupForm,
    SetupSave,
    Check,
    SyncApply,
    TestForm,
    TestRun,
    ApiStatus,
    ApiEvents,
    /// `GET /api/history`: each UPS's history (`?range=24h|7d`, `?ups=NAME`).
    ApiHistory,
    ApiCheck,
    ApiSettings,
    ApiTest,
    /// `POST /nut/adopt`, `/nut/remove`, `/nut/to-nut`: a change of NUT's files, previewed,
    /// then made; `/api/...` the same in JSON.
    NutAdopt,
    NutRemove,
    NutToNut,
    ApiAdopt,
    ApiRemove,
    ApiToNut,
    /// `GET /clients`: the NUT clients; `POST /clients/add`, `/clients/remove`: previewed,
    /// then made.
    Clients,
    ClientAdd,
    ClientRemove,
    /// `GET /commands?ups=NAME`: the UPS's instant commands and battery tests; `POST`: run one.
    Commands,
    CommandRun,
    Metrics,
    /// `GET /notify`, `POST /notify` (a channel added or changed), `/notify/remove`,
    /// `/notify/flap`, `/notify/test` (a test sent now): the Notifications page.
    NotifyPage,
    NotifySave,
    NotifyRemove,
    NotifyFlap,
    NotifyTest,
    Style,
    Script,
    Icon,
}

/// Who may ask for a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the login page, assets.
    Anyone,
    /// Anyone while `web_public_status` is on, else a session.
    Status,
    /// A session.
    Session,
    /// A session and its CSRF token: everything that changes something or runs a test.
    Write,
}

impl Route {
    pub fn access(self) -> Access {
        use Route::*;
        match self {
            LoginForm | Login | FirstPassword | Style | Script | Icon => Access::Anyone,
            Status | StatusLive | ApiStatus | ApiEvents | ApiHistory | Metrics => Access::Status,
            SetupForm | Check | TestForm | ApiCheck | ApiSettings | NotifyPage | Clients
            | Commands => Access::Session,
            ClientAdd | ClientRemove | CommandRun => Access::Write,
            Logout | SetupSave | SyncApply | TestRun | ApiTest | NutAdopt | NutRemove
            | NutToNut | ApiAdopt | ApiRemove | ApiToNut => Access::Write,
            NotifySave | NotifyRemove | NotifyFlap | NotifyTest => Access::Write,
        }
    }

    /// Whether the route answers in JSON (refusals too), rather than with a page.
    pub fn is_api(self) -> bool {
        use Route::*;
        matches!(
            self,
            ApiStatus
                | ApiEvents
                | ApiCheck
                | ApiSettings
                | ApiTest
                | ApiAdopt
                | ApiRemove
                | ApiToNut
                | ApiHistory
                | Metrics
        )
    }
}

/// The routing table: (method, path) → route, or the status to answer (404, 405).
pub fn route(method: &str, path: &str) -> Result<Route, u16> {
    use Route::*;
    let (get, post) = match path {
        "/" => (Some(Status), None),
        "/status/live" => (Some(StatusLive), None),
        "/login" => (Some(LoginForm), Some(Login)),
        "/login/setup" => (None, Some(FirstPassword)),
        "/logout" => (None, Some(Logout)),
        "/setup" => (Some(SetupForm), Some(SetupSave)),
        "/check" => (Some(Check), None),
        "/sync" => (None, Some(SyncApply)),
        "/test" => (Some(TestForm), Some(TestRun)),
        "/api/status" => (Some(ApiStatus), None),
        "/api/events" => (Some(ApiEvents), None),
        "/api/history" => (Some(ApiHistory), None),
        "/api/check" => (Some(ApiCheck), None),
        "/api/settings" => (Some(ApiSettings), None),
        "/api/test" => (None, Some(ApiTest)),
        "/nut/adopt" => (None, Some(NutAdopt)),
        "/nut/remove" => (None, Some(NutRemove)),
        "/nut/to-nut" => (None, Some(NutToNut)),
        "/api/adopt" => (None, Some(ApiAdopt)),
        "/api/remove" => (None, Some(ApiRemove)),
        "/api/to-nut" => (None, Some(ApiToNut)),
        "/clients" => (Some(Clients), None),
        "/clients/add" => (None, Some(ClientAdd)),
        "/clients/remove" => (None, Some(ClientRemove)),
        "/commands" => (Some(Commands), Some(CommandRun)),
        "/metrics" => (Some(Metrics), None),
        "/notify" => (Some(NotifyPage), Some(NotifySave)),
        "/notify/remove" => (None, Some(NotifyRemove)),
        "/notify/flap" => (None, Some(NotifyFlap)),
        "/notify/test" => (None, Some(NotifyTest)),
        "/static/style.css" => (Some(Style), None),
        "/static/app.js" => (Some(Script), None),
        "/favicon.ico" | "/static/icon.svg" => (Some(Icon), None),
        _ => return Err(404),
    };
    match method {
        "GET" | "HEAD" => get.ok_or(405),
        "POST" => post.ok_or(405),
        _ => Err(405),
    }
}

/// The methods a path answers, for `Allow` on a 405.
pub fn allowed(path: &str) -> &'static str {
    match (route("GET", path).is_ok(), route("POST", path).is_ok()) {
        (true, true) => "GET, HEAD, POST",
        (true, false) => "GET, HEAD",
        (false, true) => "POST",
        (false, false) => "",
    }
}

/// Whether a write comes from this site: no `Origin` (a form without one, or a program), or one
/// whose host is the `Host` the request was sent to.
pub fn same_origin(origin: &str, host: &str) -> bool {
    if origin.is_empty() {
        return true;
    }
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|r| !host.is_empty() && r.trim_end_matches('/') == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_routes_every_path_and_method() {
        let check = |m: &str, p: &str, want: Result<Route, u16>| {
            assert_eq!(route(m, p), want, "{m} {p}");
        };
        check("GET", "/", Ok(Route::Status));
        check("HEAD", "/", Ok(Route::Status));
        check("POST", "/", Err(405));
        check("GET", "/login", Ok(Route::LoginForm));
        check("POST", "/login", Ok(Route::Login));
        check("GET", "/login/setup", Err(405));
        check("POST", "/setup", Ok(Route::SetupSave));
        check("DELETE", "/setup", Err(405));
        check("POST", "/api/test", Ok(Route::ApiTest));
        check("GET", "/api/test", Err(405));
        check("GET", "/metrics", Ok(Route::Metrics));
        check("GET", "/api/history", Ok(Route::ApiHistory));
        check("GET", "/notify", Ok(Route::NotifyPage));
        check("POST", "/notify", Ok(Route::NotifySave));
        check("GET", "/notify/test", Err(405));
        check("POST", "/notify/test", Ok(Route::NotifyTest));
        check("GET", "/nope", Err(404));
        check("GET", "/static/../settings.bin", Err(404));
        assert_eq!(allowed("/setup"), "GET, HEAD, POST");
        assert_eq!(allowed("/sync"), "POST");
    }

    #[test]
    fn web_every_write_needs_a_session_and_csrf() {
        for (m, p) in [
            ("POST", "/logout"),
            ("POST", "/setup"),
            ("POST", "/sync"),
            ("POST", "/test"),
            ("POST", "/api/test"),
            ("POST", "/notify"),
            ("POST", "/notify/remove"),
            ("POST", "/notify/flap"),
            ("POST", "/notify/test"),
        ] {
            assert_eq!(route(m, p).unwrap().access(), Access::Write, "{p}");
        }
        assert_eq!(route("GET", "/check").unwrap().access(), Access::Session);
        assert_eq!(
            route("GET", "/api/settings").unwrap().access(),
            Access::Session
        );
        assert_eq!(route("GET", "/metrics").unwrap().access(), Access::Status);
        assert_eq!(
            route("GET", "/api/history").unwrap().access(),
            Access::Status
        );
    }

    #[test]
    fn web_same_origin() {
        assert!(same_origin("", "pi:8080"));
        assert!(same_origin("http://pi:8080", "pi:8080"));
        assert!(!same_origin("http://evil.example", "pi:8080"));
        assert!(!same_origin("null", "pi:8080"));
        assert!(!same_origin("http://pi:8080", ""));
    }
}
