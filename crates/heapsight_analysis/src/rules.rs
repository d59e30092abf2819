//! Fix suggestions: a catalogue of leak patterns with stable codes (`HS001`...), matched
//! against the retention path of a leak suspect.
//!
//! The catalogue is data ([`CATALOGUE`]): each rule lists alternative [`Matcher`]s, each
//! a conjunction of conditions on the leaked type, the types and labels along the path,
//! and structural facts (a container owned by a module, a class or an instance).
//! Rules come in [`Tier`]s: when a more specific tier matches, less specific matches are
//! dropped, so an `lru_cache` on a method is reported as HS005 and not as the generic
//! "container attribute that grows".
//!
//! Codes are stable: a code is never reused for another pattern. `docs/fix-rules.md` is
//! generated from this table by [`render_rules_markdown`] (a test keeps it in sync).

use serde::Serialize;

use crate::evidence::{OwnerKind, PathEvidence};

/// How specific a rule is; matches of the highest tier found win.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Shape only: a container reachable from a module or an object.
    Generic = 0,
    /// A shape with a strong meaning (a class attribute shared by all instances).
    Structural = 1,
    /// Names a library mechanism (`functools`, `logging`, `asyncio`, Django, ...).
    Specific = 2,
}

/// A node of a given type owned through a named attribute by a module, class or instance.
#[derive(Clone, Copy, Debug)]
pub struct Owned {
    /// Who owns the node.
    pub owner: OwnerKind,
    /// Type patterns of the owned node.
    pub types: &'static [&'static str],
}

/// One way a rule can match: every non-empty condition must hold.
///
/// Type patterns are full type names with `*` wildcards (`django.db.backends.*`).
#[derive(Clone, Copy, Debug)]
pub struct Matcher {
    /// Type of the leaked object (the path's last node).
    pub leaked_types: &'static [&'static str],
    /// Some node on the path before the leaked object has one of these types: the path
    /// goes *through* it (a leaked `_contextvars.Context` is not held by a context).
    pub path_types: &'static [&'static str],
    /// Some attribute, key or local name on the path matches one of these patterns.
    pub labels: &'static [&'static str],
    /// Some node on the path is owned as described.
    pub owned: Option<Owned>,
    /// Two consecutive nodes: a holder of the first types directly referencing the second.
    pub holds: Option<(&'static [&'static str], &'static [&'static str])>,
    /// A module of this name holds the path through this attribute (`gc`, `garbage`).
    pub module_attr: Option<(&'static str, &'static str)>,
    /// The retained object owns objects of one of these types
    /// ([`PathEvidence::retained_types`]).
    pub retains: &'static [&'static str],
}

impl Matcher {
    /// A matcher with no condition (matches everything); rules start from it.
    pub const ANY: Matcher = Matcher {
        leaked_types: &[],
        path_types: &[],
        labels: &[],
        owned: None,
        holds: None,
        module_attr: None,
        retains: &[],
    };

    /// The conditions in words, for the documentation.
    pub fn describe(&self) -> String {
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let mut parts = Vec::new();
        if !self.leaked_types.is_empty() {
            parts.push(format!(
                "the retained object is a {}",
                list(self.leaked_types)
            ));
        }
        if !self.path_types.is_empty() {
            parts.push(format!("the path goes through a {}", list(self.path_types)));
        }
        if !self.labels.is_empty() {
            parts.push(format!(
                "the path goes through the name {}",
                list(self.labels)
            ));
        }
        if let Some(owned) = self.owned {
            let owner = match owned.owner {
                OwnerKind::Module => "a module global",
                OwnerKind::Class => "a class attribute",
                OwnerKind::Instance => "an attribute of another object",
            };
            parts.push(format!("a {} on the path is {owner}", list(owned.types)));
        }
        if let Some((holders, held)) = self.holds {
            parts.push(format!(
                "a {} directly holds a {}",
                list(holders),
                list(held)
            ));
        }
        if let Some((module, attr)) = self.module_attr {
            parts.push(format!("the path goes through `{module}.{attr}`"));
        }
        if !self.retains.is_empty() {
            parts.push(format!("the retained object owns a {}", list(self.retains)));
        }
        if parts.is_empty() {
            "any path".to_owned()
        } else {
            parts.join(", and ")
        }
    }
}

/// A leak pattern with its fix.
#[derive(Clone, Copy, Debug)]
pub struct FixRule {
    /// Stable code: `HS` and three digits.
    pub code: &'static str,
    /// Short kebab-case name.
    pub name: &'static str,
    /// One-line title.
    pub title: &'static str,
    /// Specificity (see [`Tier`]).
    pub tier: Tier,
    /// Codes of rules this one replaces when both match: a more precise diagnosis of a
    /// mechanism built on the other (Django's connection store uses a thread-local).
    pub overrides: &'static [&'static str],
    /// The rule matches if any matcher does.
    pub matchers: &'static [Matcher],
    /// What the rule detects (docs: "What it does").
    pub what_it_does: &'static str,
    /// Why the pattern leaks (docs: "Why is this bad?").
    pub why_bad: &'static str,
    /// One-paragraph advice shown in reports.
    pub advice: &'static str,
    /// Python code showing the pattern.
    pub example: &'static str,
    /// The same code, fixed.
    pub use_instead: &'static str,
    /// Why the fix releases the memory.
    pub why_it_works: &'static str,
}

const DICT_TYPES: &[&str] = &["dict", "collections.OrderedDict", "collections.defaultdict"];
const LIST_TYPES: &[&str] = &["list", "collections.deque"];
const SET_TYPES: &[&str] = &["set"];
const ANY_CONTAINER: &[&str] = &[
    "dict",
    "collections.OrderedDict",
    "collections.defaultdict",
    "list",
    "collections.deque",
    "set",
];
const LRU_WRAPPER: &[&str] = &["functools._lru_cache_wrapper"];
const TASK_TYPES: &[&str] = &[
    "_asyncio.Task",
    "asyncio.tasks.Task",
    "asyncio.tasks._PyTask",
];

/// The catalogue, in code order.
pub const CATALOGUE: &[FixRule] = &[
    FixRule {
        code: "HS001",
        name: "module-dict-grows",
        title: "Unbounded module-level dict",
        tier: Tier::Generic,
        overrides: &[],
        matchers: &[Matcher {
            owned: Some(Owned { owner: OwnerKind::Module, types: DICT_TYPES }),
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects accumulating in a dict that is a module global (a registry, a cache or a session store keyed by request data).",
        why_bad: "A module global lives as long as the process. Every key added per request or per user stays forever unless code removes it, so memory grows with traffic.",
        advice: "Bound the dict: evict old entries (an LRU of fixed size, a TTL), use functools.lru_cache(maxsize=N) for memoisation, or a weakref.WeakValueDictionary when the values are owned elsewhere.",
        example: "_SESSIONS = {}\n\ndef login(user_id):\n    _SESSIONS[user_id] = UserSession(user_id)\n",
        use_instead: "import weakref\n\n_SESSIONS = weakref.WeakValueDictionary()\n\ndef login(user_id):\n    session = UserSession(user_id)\n    _SESSIONS[user_id] = session  # entry disappears with the last strong reference\n    return session\n",
        why_it_works: "A bounded cache evicts entries, and a WeakValueDictionary drops an entry as soon as nothing else references its value, so the module global no longer keeps every value alive.",
    },
    FixRule {
        code: "HS002",
        name: "module-list-grows",
        title: "Unbounded module-level list or deque",
        tier: Tier::Generic,
        overrides: &[],
        matchers: &[Matcher {
            owned: Some(Owned { owner: OwnerKind::Module, types: LIST_TYPES }),
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects accumulating in a list (or a deque without maxlen) that is a module global: histories, audit trails, debug buffers.",
        why_bad: "Appending to a global list on every request is a leak by construction: nothing ever shrinks it.",
        advice: "Keep only the last N items with collections.deque(maxlen=N), or flush the buffer to its destination (log, database) and clear it.",
        example: "_HISTORY = []\n\ndef handle(request):\n    _HISTORY.append(request.body)\n",
        use_instead: "from collections import deque\n\n_HISTORY = deque(maxlen=1000)\n\ndef handle(request):\n    _HISTORY.append(request.body)\n",
        why_it_works: "A deque with maxlen discards its oldest item on each append once full, so its size is bounded.",
    },
    FixRule {
        code: "HS003",
        name: "module-set-grows",
        title: "Unbounded module-level set",
        tier: Tier::Generic,
        overrides: &[],
        matchers: &[Matcher {
            owned: Some(Owned { owner: OwnerKind::Module, types: SET_TYPES }),
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects accumulating in a set that is a module global (\"seen\" sets, registries of live objects).",
        why_bad: "Objects added to a global set are never released unless removed explicitly; a set of live objects keeps them alive instead of observing them.",
        advice: "Use weakref.WeakSet to track objects without owning them, or remove entries when their work is done.",
        example: "_CONNECTIONS = set()\n\ndef open_connection():\n    conn = Connection()\n    _CONNECTIONS.add(conn)\n    return conn\n",
        use_instead: "import weakref\n\n_CONNECTIONS = weakref.WeakSet()\n\ndef open_connection():\n    conn = Connection()\n    _CONNECTIONS.add(conn)\n    return conn\n",
        why_it_works: "A WeakSet holds weak references: an element vanishes from it when its last strong reference goes.",
    },
    FixRule {
        code: "HS004",
        name: "class-level-registry",
        title: "Listeners, callbacks or instances stored in a class attribute",
        tier: Tier::Structural,
        overrides: &[],
        matchers: &[Matcher {
            owned: Some(Owned { owner: OwnerKind::Class, types: ANY_CONTAINER }),
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects accumulating in a list, set or dict defined on a class: listener and callback lists, instance registries, observers.",
        why_bad: "A class attribute is shared by every instance and lives as long as the class. Registering a bound method or an instance there keeps that instance, and all it references, alive forever unless it unsubscribes.",
        advice: "Hold listeners weakly (weakref.WeakSet for objects, weakref.WeakMethod for bound methods) or give subscribers an unsubscribe path that is always called (a context manager, close()).",
        example: "class EventBus:\n    listeners = []\n\n    @classmethod\n    def subscribe(cls, callback):\n        cls.listeners.append(callback)\n\nclass View:\n    def __init__(self):\n        EventBus.subscribe(self.on_event)\n",
        use_instead: "import weakref\n\nclass EventBus:\n    listeners = []\n\n    @classmethod\n    def subscribe(cls, callback):\n        cls.listeners.append(weakref.WeakMethod(callback))\n\n    @classmethod\n    def publish(cls, event):\n        cls.listeners[:] = [ref for ref in cls.listeners if ref() is not None]\n        for ref in cls.listeners:\n            callback = ref()\n            if callback is not None:\n                callback(event)\n",
        why_it_works: "A WeakMethod does not keep the bound method's instance alive, so a View can be collected as soon as the application drops it; dead references are pruned on publish.",
    },
    FixRule {
        code: "HS005",
        name: "lru-cache-on-method",
        title: "functools.lru_cache or cache on a method keeps instances alive",
        tier: Tier::Specific,
        overrides: &[],
        matchers: &[Matcher {
            owned: Some(Owned { owner: OwnerKind::Class, types: LRU_WRAPPER }),
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects retained by the cache of a functools.lru_cache / functools.cache decorated method (ruff B019).",
        why_bad: "The cache belongs to the function defined on the class, not to an instance: every call stores `self` in the cache key, so every instance ever used (and what it references) stays alive until the cache evicts it, and forever with maxsize=None.",
        advice: "Do not decorate methods with lru_cache/cache: cache per instance (functools.cached_property, or a dict stored on self), or move the cached computation to a module function whose arguments do not include self.",
        example: "import functools\n\nclass Report:\n    @functools.lru_cache(maxsize=None)\n    def totals(self, year):\n        return compute(self.rows, year)\n",
        use_instead: "class Report:\n    def __init__(self, rows):\n        self.rows = rows\n        self._totals = {}\n\n    def totals(self, year):\n        if year not in self._totals:\n            self._totals[year] = compute(self.rows, year)\n        return self._totals[year]\n",
        why_it_works: "A per-instance cache dies with its instance; nothing global references self any more.",
    },
    FixRule {
        code: "HS006",
        name: "unbounded-function-cache",
        title: "functools.cache or lru_cache(maxsize=None) with an unbounded key space",
        tier: Tier::Specific,
        overrides: &[],
        matchers: &[Matcher {
            owned: Some(Owned { owner: OwnerKind::Module, types: LRU_WRAPPER }),
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects retained by the cache of a module-level function decorated with functools.cache or lru_cache.",
        why_bad: "functools.cache and lru_cache(maxsize=None) never evict. Called with per-request arguments (ids, query strings, objects) the cache grows with traffic and keeps every argument and result alive.",
        advice: "Give the cache a bound (lru_cache(maxsize=N)), key it on small immutable values rather than objects, or call cache_clear() at a natural boundary.",
        example: "import functools\n\n@functools.cache\ndef render(template, context):\n    return template.render(context)\n",
        use_instead: "import functools\n\n@functools.lru_cache(maxsize=256)\ndef render(template_name, context_key):\n    return load(template_name).render(lookup(context_key))\n",
        why_it_works: "A bounded LRU evicts the least recently used entries, so at most maxsize keys and results are alive.",
    },
    FixRule {
        code: "HS007",
        name: "logger-per-request",
        title: "Loggers created per request or per object",
        tier: Tier::Specific,
        overrides: &[],
        matchers: &[
            Matcher { path_types: &["logging.Manager"], ..Matcher::ANY },
            Matcher { labels: &["loggerDict"], ..Matcher::ANY },
        ],
        what_it_does: "Flags objects held by logging.Logger.manager.loggerDict, the registry of every logger ever requested.",
        why_bad: "logging.getLogger(name) registers the logger forever. Names built from request ids, user names or object ids create a new logger, with its handlers and filters, on every call.",
        advice: "Use a fixed set of logger names (logging.getLogger(__name__)) and pass the varying data as context: extra=, a LoggerAdapter or a logging.Filter.",
        example: "import logging\n\ndef handle(request):\n    log = logging.getLogger(f\"request.{request.id}\")\n    log.info(\"start\")\n",
        use_instead: "import logging\n\nlog = logging.getLogger(__name__)\n\ndef handle(request):\n    log.info(\"start\", extra={\"request_id\": request.id})\n",
        why_it_works: "One logger per module is created once; per-request data travels in the log record and is freed with it.",
    },
    FixRule {
        code: "HS008",
        name: "stored-exception-traceback",
        title: "Stored exceptions keep tracebacks, frames and their locals alive",
        tier: Tier::Specific,
        overrides: &[],
        matchers: &[
            Matcher { path_types: &["traceback"], ..Matcher::ANY },
            Matcher { leaked_types: &["traceback", "frame"], ..Matcher::ANY },
            Matcher { retains: &["traceback"], ..Matcher::ANY },
        ],
        what_it_does: "Flags exceptions kept alive together with their traceback, and objects retained through a traceback: an exception kept in a list, a dict or an attribute references its __traceback__, whose frames reference every local variable of every function in the stack.",
        why_bad: "Keeping an exception object keeps the whole stack it was raised through: request objects, buffers, database rows. Storing errors for later reporting multiplies that by every failure.",
        advice: "Store what you need from the exception (type, message, formatted traceback text via traceback.format_exception) instead of the exception object, or drop its traceback with exc.with_traceback(None).",
        example: "_ERRORS = []\n\ndef handle(request):\n    try:\n        process(request)\n    except Exception as exc:\n        _ERRORS.append(exc)\n",
        use_instead: "import traceback\nfrom collections import deque\n\n_ERRORS = deque(maxlen=100)\n\ndef handle(request):\n    try:\n        process(request)\n    except Exception as exc:\n        _ERRORS.append(\"\".join(traceback.format_exception(exc)))\n",
        why_it_works: "A string of the formatted traceback references no frame, so the locals of the failed call are freed when it returns.",
    },
    FixRule {
        code: "HS009",
        name: "django-debug-queries",
        title: "Django records every SQL query while DEBUG=True",
        tier: Tier::Specific,
        overrides: &["HS010"],
        matchers: &[
            Matcher { path_types: &["django.db.*"], labels: &["queries_log", "queries"], ..Matcher::ANY },
            Matcher { labels: &["queries_log"], ..Matcher::ANY },
        ],
        what_it_does: "Flags objects held by a Django database connection's query log (connection.queries_log).",
        why_bad: "With DEBUG=True, Django appends every executed query (SQL text and timing) to the connection's log. It is capped at 9000 entries per connection, but with large SQL strings and several threads or databases that is a lot of memory, and it grows until the cap in every worker.",
        advice: "Run production with DEBUG=False. In long-running scripts or workers that need DEBUG, call django.db.reset_queries() periodically.",
        example: "# settings.py\nDEBUG = True  # in production\n",
        use_instead: "# settings.py\nDEBUG = False\n\n# a long-running management command that needs DEBUG:\nfrom django.db import reset_queries\n\nfor batch in batches:\n    process(batch)\n    reset_queries()\n",
        why_it_works: "With DEBUG off the query log is not filled; reset_queries() empties it.",
    },
    FixRule {
        code: "HS010",
        name: "thread-local-or-context-never-cleared",
        title: "threading.local or contextvars values never cleared",
        tier: Tier::Specific,
        overrides: &[],
        matchers: &[Matcher {
            path_types: &[
                "_thread._local",
                "_thread._localdummy",
                "_threading_local.local",
                "_contextvars.Context",
                "_contextvars.ContextVar",
                "hamt*",
            ],
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects retained through a threading.local or a contextvars context.",
        why_bad: "Values stored in a thread-local live as long as the thread, and worker threads of a server live as long as the process; a context variable set in a long-lived context keeps its value until reset. Per-request objects stored there outlive their request.",
        advice: "Clear per-request state when the request ends (a try/finally, middleware, or ContextVar.reset(token)); prefer passing the object explicitly.",
        example: "import threading\n\n_state = threading.local()\n\ndef middleware(request):\n    _state.request = request\n    return handler(request)\n",
        use_instead: "import contextvars\n\n_request = contextvars.ContextVar(\"request\")\n\ndef middleware(request):\n    token = _request.set(request)\n    try:\n        return handler(request)\n    finally:\n        _request.reset(token)\n",
        why_it_works: "Resetting in finally removes the reference when the request ends, whatever happens inside the handler.",
    },
    FixRule {
        code: "HS011",
        name: "asyncio-task-set",
        title: "asyncio tasks kept in a set that is never pruned",
        tier: Tier::Specific,
        overrides: &[],
        matchers: &[Matcher { holds: Some((SET_TYPES, TASK_TYPES)), ..Matcher::ANY }],
        what_it_does: "Flags objects retained by asyncio tasks stored in a set (the usual way to keep fire-and-forget tasks from being garbage collected).",
        why_bad: "The asyncio documentation recommends keeping a strong reference to background tasks, but a finished task keeps its result, exception and coroutine frame; unless it is removed from the set when done, every task ever started stays alive.",
        advice: "Register task.add_done_callback(background_tasks.discard) right after adding the task, or use asyncio.TaskGroup.",
        example: "background_tasks = set()\n\nasync def handle(request):\n    task = asyncio.create_task(notify(request))\n    background_tasks.add(task)\n",
        use_instead: "background_tasks = set()\n\nasync def handle(request):\n    task = asyncio.create_task(notify(request))\n    background_tasks.add(task)\n    task.add_done_callback(background_tasks.discard)\n",
        why_it_works: "The done callback removes the task from the set when it finishes, so only running tasks are referenced.",
    },
    FixRule {
        code: "HS012",
        name: "uncollectable-cycles",
        title: "Objects stuck in gc.garbage",
        tier: Tier::Specific,
        overrides: &[],
        matchers: &[Matcher { module_attr: Some(("gc", "garbage")), ..Matcher::ANY }],
        what_it_does: "Flags objects held by gc.garbage, the list where the cycle collector puts objects it found unreachable but could not free (or every unreachable object with gc.DEBUG_SAVEALL).",
        why_bad: "Objects in gc.garbage are never freed: the list keeps them, and everything they reference, alive. They usually come from gc.set_debug(gc.DEBUG_SAVEALL) left on, or from extension types with legacy finalizers in reference cycles.",
        advice: "Do not leave gc.DEBUG_SAVEALL enabled; break the reference cycles explicitly (close(), weakref for back-references) and clear gc.garbage after inspecting it.",
        example: "import gc\n\ngc.set_debug(gc.DEBUG_SAVEALL)  # left over from a debugging session\n",
        use_instead: "import gc\n\ngc.set_debug(0)\ngc.collect()\ngc.garbage.clear()\n",
        why_it_works: "Without DEBUG_SAVEALL the collector frees unreachable cycles; clearing gc.garbage drops the references it held.",
    },
    FixRule {
        code: "HS013",
        name: "orm-session-held-globally",
        title: "ORM session or identity map held globally",
        tier: Tier::Specific,
        overrides: &["HS010"],
        matchers: &[Matcher {
            path_types: &[
                "sqlalchemy.orm.session.Session",
                "sqlalchemy.orm.scoping.scoped_session",
                "sqlalchemy.orm.identity.*",
                "sqlalchemy.orm.state.InstanceState",
            ],
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects retained through a SQLAlchemy Session (its identity map, new/dirty sets or instance states) that is itself reachable from a global.",
        why_bad: "A session references every object it loaded or added until it is closed, expunged or committed (and modified or pending objects strongly). A session stored in a global, or a scoped_session never removed, accumulates every row the process ever touched.",
        advice: "Scope sessions to a unit of work: `with Session(engine) as session:` per request or job, and call scoped_session.remove() at the end of each request.",
        example: "session = Session(engine)  # module global\n\ndef get_user(user_id):\n    return session.get(User, user_id)\n",
        use_instead: "def get_user(user_id):\n    with Session(engine) as session:\n        user = session.get(User, user_id)\n        session.expunge(user)\n        return user\n",
        why_it_works: "Closing the session empties its identity map, so loaded objects are freed once the caller drops them.",
    },
    FixRule {
        code: "HS014",
        name: "instance-container-grows",
        title: "Container attribute of a long-lived object grows",
        tier: Tier::Generic,
        overrides: &[],
        matchers: &[Matcher {
            owned: Some(Owned { owner: OwnerKind::Instance, types: ANY_CONTAINER }),
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects accumulating in a list, dict or set stored as an attribute of an object that itself lives long (an application, a client, a singleton service).",
        why_bad: "The container lives as long as its owner; if entries are added per request and the owner is process-wide, they are never released.",
        advice: "Bound the container (deque(maxlen=N), an LRU), remove entries when their work ends, or hold them weakly (WeakValueDictionary, WeakSet).",
        example: "class Client:\n    def __init__(self):\n        self.responses = []\n\n    def get(self, url):\n        response = self._send(url)\n        self.responses.append(response)\n        return response\n",
        use_instead: "from collections import deque\n\nclass Client:\n    def __init__(self):\n        self.responses = deque(maxlen=100)\n",
        why_it_works: "Bounding or pruning the container caps what the long-lived owner can keep alive.",
    },
    FixRule {
        code: "HS015",
        name: "module-buffer-grows",
        title: "Module-level buffer that keeps growing",
        tier: Tier::Generic,
        overrides: &[],
        matchers: &[Matcher {
            owned: Some(Owned {
                owner: OwnerKind::Module,
                types: &["bytearray", "_io.BytesIO", "_io.StringIO"],
            }),
            ..Matcher::ANY
        }],
        what_it_does: "Flags a bytearray, io.BytesIO or io.StringIO held by a module global whose size grows between snapshots.",
        why_bad: "A process-wide buffer that is appended to and never truncated grows with traffic; a bytearray never gives memory back by itself.",
        advice: "Truncate or replace the buffer after each flush (del buf[:], a fresh BytesIO), or write to the destination directly; cap it if it must accumulate.",
        example: "_BUFFER = bytearray()

def record(event):
    _BUFFER.extend(event.encode())
",
        use_instead: "_BUFFER = bytearray()
_LIMIT = 1 << 20

def record(event):
    _BUFFER.extend(event.encode())
    if len(_BUFFER) >= _LIMIT:
        flush(bytes(_BUFFER))
        del _BUFFER[:]
",
        why_it_works: "Deleting the contents after each flush bounds the buffer to the flush threshold.",
    },
    FixRule {
        code: "HS016",
        name: "signal-receivers-grow",
        title: "Signal receivers connected per request or per object",
        tier: Tier::Specific,
        overrides: &[],
        matchers: &[Matcher {
            // Subclasses live anywhere (django.db.models.signals.ModelSignal, user
            // signals), so the class name and the receivers attribute identify them.
            path_types: &["*Signal"],
            labels: &["receivers", "_by_receiver", "_by_sender"],
            ..Matcher::ANY
        }],
        what_it_does: "Flags objects retained by the receiver list of a Django or blinker (Flask) signal.",
        why_bad: "A signal lives as long as the process. Connecting a receiver on every request or for every new object with weak=False (the usual way to keep a lambda or closure connected, since nothing else references it) adds a receiver each time, and each keeps its closure and bound instance alive forever.",
        advice: "Connect receivers once at import or app-ready time, keep the default weak references, use dispatch_uid to avoid duplicates, and disconnect receivers tied to short-lived objects.",
        example: "from django.db.models.signals import post_save\n\ndef handle(request):\n    post_save.connect(lambda sender, **kw: audit(request, kw), weak=False)\n",
        use_instead: "from django.db.models.signals import post_save\nfrom django.dispatch import receiver\n\n@receiver(post_save, dispatch_uid=\"audit_on_save\")\ndef audit_on_save(sender, **kwargs):\n    audit(current_request(), kwargs)\n",
        why_it_works: "One receiver connected once does not accumulate, and a weakly held receiver goes away with its owner.",
    },
];

/// A rule that matched a path, with what made it match.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FixSuggestion {
    /// Stable rule code (`HS001`...).
    pub code: &'static str,
    /// Short kebab-case rule name.
    pub name: &'static str,
    /// One-line title.
    pub title: &'static str,
    /// Specificity of the rule.
    pub tier: Tier,
    /// What to do.
    pub advice: &'static str,
    /// Python code showing the pattern.
    pub example: &'static str,
    /// The same code, fixed.
    pub use_instead: &'static str,
    /// Why the fix releases the memory.
    pub why_it_works: &'static str,
    /// The facts of the path that matched (`owned by module app as ._SESSIONS (dict)`).
    pub matched_because: String,
}

/// Glob match with `*` standing for any run of characters.
pub fn type_pattern_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(stripped) = rest.strip_prefix(part) else {
                return false;
            };
            rest = stripped;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn any_matches(patterns: &[&str], text: &str) -> bool {
    patterns.iter().any(|p| type_pattern_matches(p, text))
}

/// Checks one matcher; on success returns the facts that matched, for explanations.
fn check(matcher: &Matcher, path: &PathEvidence) -> Option<Vec<String>> {
    let mut facts = Vec::new();
    if !matcher.leaked_types.is_empty() {
        let leaked = path.leaked_type();
        if !any_matches(matcher.leaked_types, leaked) {
            return None;
        }
        facts.push(format!("the retained object is a {leaked}"));
    }
    if !matcher.path_types.is_empty() {
        let before_leaked = &path.nodes[..path.nodes.len().saturating_sub(1)];
        let node = before_leaked
            .iter()
            .find(|n| any_matches(matcher.path_types, &n.type_name))?;
        facts.push(format!("the path goes through a {}", node.type_name));
    }
    if !matcher.labels.is_empty() {
        let label = path
            .edges
            .iter()
            .filter_map(|e| e.text.as_deref())
            .find(|t| any_matches(matcher.labels, t))?;
        facts.push(format!("the path goes through '{label}'"));
    }
    if let Some(owned) = matcher.owned {
        let fact = (1..path.nodes.len()).find_map(|i| {
            let node = &path.nodes[i];
            if !any_matches(owned.types, &node.type_name) {
                return None;
            }
            let (owner, kind, attr) = path.owner_of(i)?;
            (kind == owned.owner).then(|| {
                let owner_node = &path.nodes[owner];
                let owner_text = match kind {
                    OwnerKind::Module => format!(
                        "module {}",
                        path.module_name_at(owner)
                            .unwrap_or(owner_node.type_name.as_str())
                    ),
                    OwnerKind::Class => format!(
                        "class {}",
                        owner_node
                            .name
                            .as_deref()
                            .unwrap_or(owner_node.type_name.as_str())
                    ),
                    OwnerKind::Instance => format!("a {}", owner_node.type_name),
                };
                format!("a {} is held by {owner_text} as .{attr}", node.type_name)
            })
        })?;
        facts.push(fact);
    }
    if let Some((holders, held)) = matcher.holds {
        let pair = path.nodes.windows(2).find(|w| {
            any_matches(holders, &w[0].type_name) && any_matches(held, &w[1].type_name)
        })?;
        facts.push(format!(
            "a {} holds a {}",
            pair[0].type_name, pair[1].type_name
        ));
    }
    if !matcher.retains.is_empty() {
        let owned = path
            .retained_types
            .iter()
            .find(|t| any_matches(matcher.retains, t))?;
        facts.push(format!("the retained object owns a {owned}"));
    }
    if let Some((module, attr)) = matcher.module_attr {
        let found = (1..path.nodes.len()).any(|i| {
            path.owner_of(i).is_some_and(|(owner, kind, name)| {
                kind == OwnerKind::Module
                    && name == attr
                    && path.module_name_at(owner) == Some(module)
            })
        });
        if !found {
            return None;
        }
        facts.push(format!("the path goes through {module}.{attr}"));
    }
    Some(facts)
}

/// Rules matching `path`: the most specific tier only, minus rules overridden by
/// another match, in catalogue order.
pub fn suggest_fixes(path: &PathEvidence) -> Vec<FixSuggestion> {
    suggest_from(CATALOGUE, path)
}

/// [`suggest_fixes`] over any catalogue (tests use small ones).
pub fn suggest_from(catalogue: &[FixRule], path: &PathEvidence) -> Vec<FixSuggestion> {
    let mut matched: Vec<(&FixRule, Vec<String>)> = catalogue
        .iter()
        .filter_map(|rule| {
            rule.matchers
                .iter()
                .find_map(|m| check(m, path))
                .map(|facts| (rule, facts))
        })
        .collect();
    let Some(best) = matched.iter().map(|(r, _)| r.tier).max() else {
        return Vec::new();
    };
    matched.retain(|(r, _)| r.tier == best);
    let overridden: Vec<&str> = matched
        .iter()
        .flat_map(|(r, _)| r.overrides.iter().copied())
        .collect();
    matched.retain(|(r, _)| !overridden.contains(&r.code));
    matched
        .into_iter()
        .map(|(rule, facts)| FixSuggestion {
            code: rule.code,
            name: rule.name,
            title: rule.title,
            tier: rule.tier,
            advice: rule.advice,
            example: rule.example,
            use_instead: rule.use_instead,
            why_it_works: rule.why_it_works,
            matched_because: facts.join("; "),
        })
        .collect()
}

/// The rule with `code`, if any.
pub fn rule(code: &str) -> Option<&'static FixRule> {
    CATALOGUE.iter().find(|r| r.code == code)
}

/// `docs/fix-rules.md`, generated from the catalogue (ruff's documentation shape).
pub fn render_rules_markdown() -> String {
    let mut out = String::from(
        "# Fix rules\n\n\
         <!-- Generated from crates/heapsight_analysis/src/rules.rs by `render_rules_markdown`;\n\
         a test fails when this file is out of date. Regenerate with\n\
         `UPDATE_DOCS=1 cargo test -p heapsight_analysis docs_are_in_sync`. -->\n\n\
         heapsight matches the retention path of each leak suspect against these rules and\n\
         prints the fixes that apply. Codes are stable and never reused. Only the most\n\
         specific tier that matched is shown (`specific` names a library mechanism,\n\
         `structural` a shape with a strong meaning, `generic` a shape only).\n\n\
         | code | name | title | tier |\n|---|---|---|---|\n",
    );
    for rule in CATALOGUE {
        let tier = match rule.tier {
            Tier::Generic => "generic",
            Tier::Structural => "structural",
            Tier::Specific => "specific",
        };
        out.push_str(&format!(
            "| [{code}](#{anchor}) | {name} | {title} | {tier} |\n",
            code = rule.code,
            anchor = format!("{}-{}", rule.code, rule.name).to_lowercase(),
            name = rule.name,
            title = rule.title,
        ));
    }
    for rule in CATALOGUE {
        let detection = rule
            .matchers
            .iter()
            .map(Matcher::describe)
            .collect::<Vec<_>>()
            .join("; or when ");
        let replaces = if rule.overrides.is_empty() {
            String::new()
        } else {
            format!(
                " When it matches, {} is not reported.",
                rule.overrides.join(", ")
            )
        };
        out.push_str(&format!(
            "\n## {code} {name}\n\n**{title}**\n\n### What it does\n{what}\n\nMatches when {detection}.{replaces}\n\n### Why is this bad?\n{why}\n\n\
             ### Example\n```python\n{example}```\n\n### Use instead\n```python\n{instead}```\n\n{advice}\n\n\
             Why it works: {works}\n",
            code = rule.code,
            name = rule.name,
            title = rule.title,
            what = rule.what_it_does,
            why = rule.why_bad,
            example = rule.example,
            instead = rule.use_instead,
            advice = rule.advice,
            works = rule.why_it_works,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(type_pattern_matches("dict", "dict"));
        assert!(!type_pattern_matches("dict", "dicta"));
        assert!(type_pattern_matches(
            "django.db.*",
            "django.db.backends.utils.CursorWrapper"
        ));
        assert!(!type_pattern_matches(
            "django.db.*",
            "django.http.HttpRequest"
        ));
        assert!(type_pattern_matches("hamt*", "hamt_bitmap_node"));
        assert!(type_pattern_matches("*Meta", "abc.ABCMeta"));
        assert!(type_pattern_matches("a*b*c", "a__b__c"));
        assert!(!type_pattern_matches("a*b*c", "a__c__b"));
    }

    #[test]
    fn catalogue_codes_are_unique_and_well_formed() {
        let mut codes: Vec<&str> = CATALOGUE.iter().map(|r| r.code).collect();
        for code in &codes {
            assert!(
                code.len() == 5
                    && code.starts_with("HS")
                    && code[2..].chars().all(|c| c.is_ascii_digit())
            );
        }
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n, "duplicate codes");
        for rule in CATALOGUE {
            assert!(!rule.matchers.is_empty(), "{} has no matcher", rule.code);
            for text in [
                rule.what_it_does,
                rule.why_bad,
                rule.advice,
                rule.example,
                rule.use_instead,
                rule.why_it_works,
            ] {
                assert!(!text.trim().is_empty(), "{} has an empty text", rule.code);
            }
            assert!(rule.example.ends_with('\n') && rule.use_instead.ends_with('\n'));
        }
    }
}
