// The dispatcher's page in Chinese and English: Chinese for a browser that prefers it,
// and the dispatcher's choice is remembered on this computer. Same shape as the
// reporter's page (t, translatePage, toggleLang).

const STORAGE_KEY = "qly.lang";

const STRINGS = {
  zh: {
    title: "千里眼 · 调度台",
    heading: "千里眼 · 调度台",
    switchLanguage: "English",
    titleNew: (n) => `(${n}) 新紧急 · 千里眼 · 调度台`,

    "conn.connecting": "正在连接…",
    "conn.live": "实时",
    "conn.reconnecting": "网络中断，正在重连…",
    "conn.signedOut": "未登录",
    "conn.liveTitle": "实时接收新的警报",
    staleSince: (time) => `连接中断：列表停留在 ${time}，恢复后自动补齐。`,

    countCritical: (n) => `紧急 ${n}`,
    countOpen: (n) => `未确认 ${n}`,
    "role.dispatcher": (name) => `调度员：${name}`,
    "role.manager": (name) => `主管：${name}`,
    signOut: "退出登录",

    newAlerts: (n, place) =>
      n === 1 ? `新紧急警报：${place}` : `${n} 条新紧急警报，最新：${place}`,
    showNew: "查看",

    filterStatus: "状态",
    "statusFilter.active": "进行中（未确认 + 已确认）",
    "statusFilter.open": "未确认",
    "statusFilter.acknowledged": "已确认",
    "statusFilter.resolved": "已解决",
    "statusFilter.all": "全部",
    filterSeverity: "最低级别",
    "severityFilter.any": "全部级别",
    "severityFilter.minor": "一般及以上",
    "severityFilter.major": "严重及以上",
    "severityFilter.critical": "仅紧急",
    filterUnit: "单位",
    filterUnitHint: "全部单位",
    filterClear: "清除筛选",
    listCount: (n) => `共 ${n} 条`,
    listTruncated: (n) => `只显示最前面的 ${n} 条；请用筛选缩小范围。`,

    feed: "警报列表",
    "col.severity": "级别",
    "col.status": "状态",
    "col.place": "地点 / 单位",
    "col.reports": "报告",
    "col.opened": "发生",
    "col.latest": "最新收到",
    "col.assignee": "负责人",
    noAlerts: "没有符合条件的警报。",
    loadFailed: (why) => `警报列表载入失败：${why}。将自动重试。`,
    newBadge: "新",
    noPlace: "（未注明地点）",
    reportCount: (n) => `${n} 份`,

    "sev.info": "提示",
    "sev.minor": "一般",
    "sev.major": "严重",
    "sev.critical": "紧急",
    "sev.none": "未分级",
    "status.open": "未确认",
    "status.acknowledged": "已确认",
    "status.resolved": "已解决",

    pickAlert: "在左侧选择一条警报查看详情。",
    loadingDetail: "正在载入…",
    detailFailed: (why) => `详情载入失败：${why}`,
    retry: "重试",
    reload: "重新载入",
    incident: "事件",
    changedElsewhere: "您填写期间此事件有了新变化。重新载入后再决定（已填写的内容会保留）。",
    conflict: "此事件已被他人更改，已重新载入。请看清最新情况后再操作。",
    conflictNews: "此事件有了新情况，已重新载入。请看清最新情况后再操作。",
    conflictUnseen: "此事件在您打开后有了更新。",
    changedFact: (label, was, now) => `${label}：${was} → ${now}`,
    changedReports: "报告的文字或照片有了更新",
    changeLine: (time, actor, what) => `${time} ${actor}：${what}`,
    refused: (why) => `操作未执行：${why}`,
    // The server's refusals, by their codes; a code without an entry shows its own words.
    "problem.incident_changing": "另一位调度员对此事件的操作正在记录，请稍后再决定",
    "problem.incident_not_found": "找不到这个事件",
    networkError: "网络不可用，操作未发送；输入已保留，请稍后重试。",
    serverError: (status) => `服务器暂时不可用（${status}），操作未执行；请稍后重试。`,
    sent: "已提交，正在更新…",
    done: (what) => `已完成：${what}`,
    notYetShown: "操作已记录，页面稍后会显示。",
    needSignIn: "登录已失效，请重新登录后再试；填写的内容已保留。",

    "fact.severity": "级别",
    "fact.place": "地点",
    "fact.unit": "单位",
    "fact.ruleSeverity": (sev) => `规则判定：${sev}`,
    "fact.override": (sev, who, reason) => `人工改为 ${sev}（${who}：${reason}）`,
    "fact.opened": "发生",
    "fact.latest": "最新报告",
    "fact.reports": "报告数",
    "fact.assignee": "负责人",
    "fact.acknowledged": "确认",
    "fact.resolved": "解决",
    "fact.version": "版本",
    byAt: (who, time) => `${who} · ${time}`,
    nobody: "—",

    actions: "操作",
    "act.acknowledge": "确认接警",
    "act.assign": "指派",
    "act.note": "添加备注",
    "act.override_severity": "更改级别",
    "act.resolve": "解决",
    "act.reopen": "重新打开",
    "field.assignee": "指派给",
    "field.note": "备注",
    "field.severity": "新级别",
    "field.reason": "原因",
    "field.resolution": "处理结果",
    "field.reopenReason": "重新打开的原因",
    "hint.assignee": "姓名、班组或单位",
    "hint.note": "写在事件时间线上",
    "hint.resolution": "如何处理、结果如何",
    required: (what) => `请填写${what}。`,
    working: "处理中…",

    reports: "报告",
    reportN: (n, total) => `报告 ${n}/${total}`,
    captured: "拍摄",
    received: "接收",
    capturedReceived: (a, b) => `拍摄 ${a} · 接收 ${b}`,
    delayed: (d) => `晚到 ${d}`,
    reporter: "报告人",
    via: (sender) => `（经 ${sender} 转发）`,
    category: "类别",
    unit: "单位",
    place: "地点",
    location: (lat, lon, acc) => `位置 ${lat}, ${lon}${acc ? `（±${acc} 米）` : ""}`,
    photos: "照片",
    openPhoto: (n) => `打开照片 ${n} 原图`,
    photoTaken: (time) => `拍摄于 ${time}`,
    reasons: "分级依据",
    noReasons: "没有规则命中。",
    ruleSet: (v) => `规则版本 ${v}`,
    noText: "（无文字）",
    evidence: "依据",

    told: "通知情况",
    "told.nobody": "本轮尚未通知任何人",
    "told.summary": (n) =>
      [
        `已送达 ${n.delivered}`,
        n.retrying && `重试中 ${n.retrying}`,
        n.stopped && `未送达 ${n.stopped}`,
        n.failed && `失败 ${n.failed}（请电话联系）`,
      ]
        .filter(Boolean)
        .join("，"),
    "told.first": "首次通知",
    "told.escalation": (step) => `第 ${step} 级升级`,
    "told.delivered": (time) => `已送达 ${time}`,
    "told.retrying": (n, time, error) => `未送达，已试 ${n} 次，${time} 再试：${error}`,
    "told.failed": (n, error) => `失败，试了 ${n} 次，不再重试：${error}`,
    "told.stopped": (n, status, error) => `未送达，试了 ${n} 次；事件${status}，不再重试：${error}`,

    timeline: "时间线",
    "ev.ReportTriaged": (d) => `报告分级为 ${d.severity}`,
    "ev.AlertAcknowledged": () => "确认接警",
    "ev.AlertAssigned": (d) => `指派给 ${d.assignee}`,
    "ev.AlertNoteAdded": (d) => `备注：${d.note}`,
    "ev.SeverityOverridden": (d) => `级别改为 ${d.severity}：${d.reason}`,
    "ev.AlertResolved": (d) => `解决：${d.resolution}`,
    "ev.AlertReopened": (d) => `重新打开：${d.reason}`,
    "ev.superseded": (version, what) => `未生效（第 ${version} 版已有先到的操作）：${what}`,
    "ev.refused": (status, what) => `未生效（事件当时${status}）：${what}`,
    "ev.AlertRaised": (d) => `发出警报：${d.severity}（路由 ${d.route}）`,
    "ev.AlertUpgraded": (d) => `事件加重为 ${d.severity}，按路由 ${d.route} 重新通知`,
    "ev.AlertEscalated": (d) => `无人确认，升级到第 ${d.step} 级`,
    "ev.AlertDelivered": (d) =>
      `已通知 ${d.recipient}（${d.channel}${d.severity ? `，${d.severity}` : ""}）`,
    "ev.AlertDeliveryFailed": (d) =>
      `通知 ${d.recipient} 失败（${d.channel}）：${d.error}${d.next_attempt_at ? "，将重试" : "，不再重试"}`,
    system: "系统",

    "cat.track": "线路 / 轨道",
    "cat.signal": "信号",
    "cat.overhead_line": "接触网 / 供电",
    "cat.rolling_stock": "机车车辆",
    "cat.station": "车站设施",
    "cat.passengers": "旅客 / 客流",
    "cat.weather": "天气 / 自然灾害",
    "cat.safety": "人身安全",
    "cat.other": "其他",

    signInTitle: "登录调度台",
    signInHint: "每项操作都会记在登录的账号下。",
    signInExpired: "登录已失效，请重新登录。页面上的内容会保留。",
    username: "用户名",
    password: "密码",
    signIn: "登录",
    signingIn: "正在登录…",
    signInMissing: "请填写用户名和密码。",
    signInWrong: "用户名或密码错误，或账号已停用。",
    signInTooMany: (s) => `尝试次数过多，请 ${s} 秒后再试。`,
    signInOffline: "无法连接服务器，请检查网络后重试。",
    signInFailed: (status) => `登录失败（${status}），请稍后再试。`,
    signInNotDispatch: "此账号不能使用调度台（需要调度员或主管角色）。",
    signOutPending: "退出登录尚未送达服务器，正在重试：在此之前，本机的登录在服务器上仍然有效。",
  },
  en: {
    title: "Qianliyan · Dispatch",
    heading: "Qianliyan · Dispatch",
    switchLanguage: "中文",
    titleNew: (n) => `(${n}) new critical · Qianliyan · Dispatch`,

    "conn.connecting": "Connecting…",
    "conn.live": "Live",
    "conn.reconnecting": "Connection lost, reconnecting…",
    "conn.signedOut": "Signed out",
    "conn.liveTitle": "New alerts arrive as they happen",
    staleSince: (time) => `Disconnected: the list is as of ${time}; it catches up on reconnection.`,

    countCritical: (n) => `Critical ${n}`,
    countOpen: (n) => `Open ${n}`,
    "role.dispatcher": (name) => `Dispatcher: ${name}`,
    "role.manager": (name) => `Manager: ${name}`,
    signOut: "Sign out",

    newAlerts: (n, place) =>
      n === 1 ? `New critical alert: ${place}` : `${n} new critical alerts, latest: ${place}`,
    showNew: "Show",

    filterStatus: "Status",
    "statusFilter.active": "Active (open + acknowledged)",
    "statusFilter.open": "Open (unacknowledged)",
    "statusFilter.acknowledged": "Acknowledged",
    "statusFilter.resolved": "Resolved",
    "statusFilter.all": "All",
    filterSeverity: "Minimum severity",
    "severityFilter.any": "Any severity",
    "severityFilter.minor": "Minor and above",
    "severityFilter.major": "Major and above",
    "severityFilter.critical": "Critical only",
    filterUnit: "Unit",
    filterUnitHint: "All units",
    filterClear: "Clear filters",
    listCount: (n) => `${n} alert${n === 1 ? "" : "s"}`,
    listTruncated: (n) => `Showing the first ${n} only; narrow the filters.`,

    feed: "Alerts",
    "col.severity": "Severity",
    "col.status": "Status",
    "col.place": "Place / unit",
    "col.reports": "Reports",
    "col.opened": "Opened",
    "col.latest": "Latest in",
    "col.assignee": "Assignee",
    noAlerts: "No alert matches the filters.",
    loadFailed: (why) => `The alert list did not load: ${why}. Retrying by itself.`,
    newBadge: "NEW",
    noPlace: "(no place given)",
    reportCount: (n) => `${n}`,

    "sev.info": "info",
    "sev.minor": "minor",
    "sev.major": "major",
    "sev.critical": "critical",
    "sev.none": "not triaged",
    "status.open": "open",
    "status.acknowledged": "acknowledged",
    "status.resolved": "resolved",

    pickAlert: "Pick an alert on the left to see its details.",
    loadingDetail: "Loading…",
    detailFailed: (why) => `The details did not load: ${why}`,
    retry: "Retry",
    reload: "Reload",
    incident: "Incident",
    changedElsewhere:
      "This incident changed while you were writing. Reload before deciding (what you typed is kept).",
    conflict: "Changed by someone else — reloaded. Check what is new before acting.",
    conflictNews: "Something new came in — reloaded. Check what is new before acting.",
    conflictUnseen: "The incident was updated after you opened it.",
    changedFact: (label, was, now) => `${label}: ${was} → ${now}`,
    changedReports: "A report's text or photos were updated",
    changeLine: (time, actor, what) => `${time} ${actor}: ${what}`,
    refused: (why) => `Not done: ${why}`,
    networkError: "No network: the action was not sent; your input is kept, try again shortly.",
    serverError: (status) =>
      `The server is unavailable (${status}); nothing was done, try again shortly.`,
    sent: "Sent, updating…",
    done: (what) => `Done: ${what}`,
    notYetShown: "The action is recorded; the page will show it shortly.",
    needSignIn: "Your session has ended: sign in again and retry; what you wrote is kept.",

    "fact.severity": "Severity",
    "fact.place": "Place",
    "fact.unit": "Unit",
    "fact.ruleSeverity": (sev) => `rules: ${sev}`,
    "fact.override": (sev, who, reason) => `set to ${sev} by ${who}: ${reason}`,
    "fact.opened": "Opened",
    "fact.latest": "Latest report",
    "fact.reports": "Reports",
    "fact.assignee": "Assignee",
    "fact.acknowledged": "Acknowledged",
    "fact.resolved": "Resolved",
    "fact.version": "Version",
    byAt: (who, time) => `${who} · ${time}`,
    nobody: "—",

    actions: "Actions",
    "act.acknowledge": "Acknowledge",
    "act.assign": "Assign",
    "act.note": "Add note",
    "act.override_severity": "Change severity",
    "act.resolve": "Resolve",
    "act.reopen": "Reopen",
    "field.assignee": "Assign to",
    "field.note": "Note",
    "field.severity": "New severity",
    "field.reason": "Reason",
    "field.resolution": "Resolution",
    "field.reopenReason": "Why reopen",
    "hint.assignee": "Name, crew or unit",
    "hint.note": "Goes on the incident's timeline",
    "hint.resolution": "What was done, and the outcome",
    required: (what) => `Please fill in: ${what}.`,
    working: "Working…",

    reports: "Reports",
    reportN: (n, total) => `Report ${n} of ${total}`,
    captured: "captured",
    received: "received",
    capturedReceived: (a, b) => `captured ${a}, received ${b}`,
    delayed: (d) => `arrived ${d} late`,
    reporter: "Reporter",
    via: (sender) => ` (sent via ${sender})`, // after the name; Chinese needs no space
    category: "Category",
    unit: "Unit",
    place: "Place",
    location: (lat, lon, acc) => `Location ${lat}, ${lon}${acc ? ` (±${acc} m)` : ""}`,
    photos: "Photos",
    openPhoto: (n) => `Open photo ${n} full size`,
    photoTaken: (time) => `taken ${time}`,
    reasons: "Why this severity",
    noReasons: "No rule matched.",
    ruleSet: (v) => `rules ${v}`,
    noText: "(no text)",
    evidence: "evidence",

    told: "Who was told",
    "told.nobody": "Nobody has been told in this round yet",
    "told.summary": (n) =>
      [
        `${n.delivered} delivered`,
        n.retrying && `${n.retrying} retrying`,
        n.stopped && `${n.stopped} not delivered`,
        n.failed && `${n.failed} failed (call them)`,
      ]
        .filter(Boolean)
        .join(", "),
    "told.first": "first message",
    "told.escalation": (step) => `escalation step ${step}`,
    "told.delivered": (time) => `delivered ${time}`,
    "told.retrying": (n, time, error) => `not delivered after ${n} tries, next at ${time}: ${error}`,
    "told.failed": (n, error) => `failed after ${n} tries, given up: ${error}`,
    "told.stopped": (n, status, error) =>
      `not delivered after ${n} tries; the incident is ${status}, so no more: ${error}`,

    timeline: "Timeline",
    "ev.ReportTriaged": (d) => `Report triaged as ${d.severity}`,
    "ev.AlertAcknowledged": () => "Acknowledged",
    "ev.AlertAssigned": (d) => `Assigned to ${d.assignee}`,
    "ev.AlertNoteAdded": (d) => `Note: ${d.note}`,
    "ev.SeverityOverridden": (d) => `Severity set to ${d.severity}: ${d.reason}`,
    "ev.AlertResolved": (d) => `Resolved: ${d.resolution}`,
    "ev.AlertReopened": (d) => `Reopened: ${d.reason}`,
    "ev.superseded": (version, what) =>
      `Not applied (another action on version ${version} came first): ${what}`,
    "ev.refused": (status, what) => `Not applied (the incident was ${status} by then): ${what}`,
    "ev.AlertRaised": (d) => `Alert raised: ${d.severity} (route ${d.route})`,
    "ev.AlertUpgraded": (d) => `Grew to ${d.severity}: told again by route ${d.route}`,
    "ev.AlertEscalated": (d) => `Nobody acknowledged: escalated to step ${d.step}`,
    "ev.AlertDelivered": (d) =>
      `Told ${d.recipient} (${d.channel}${d.severity ? `, ${d.severity}` : ""})`,
    "ev.AlertDeliveryFailed": (d) =>
      `Telling ${d.recipient} failed (${d.channel}): ${d.error}${d.next_attempt_at ? "; will retry" : "; no more attempts"}`,
    system: "system",

    "cat.track": "Track",
    "cat.signal": "Signalling",
    "cat.overhead_line": "Overhead line / power",
    "cat.rolling_stock": "Rolling stock",
    "cat.station": "Station facilities",
    "cat.passengers": "Passengers / crowding",
    "cat.weather": "Weather / natural hazard",
    "cat.safety": "Personal safety",
    "cat.other": "Other",

    signInTitle: "Sign in to dispatch",
    signInHint: "Every action is recorded under the account signed in.",
    signInExpired: "Your session has ended; please sign in again. The page keeps what it shows.",
    username: "User name",
    password: "Password",
    signIn: "Sign in",
    signingIn: "Signing in…",
    signInMissing: "Please enter your user name and password.",
    signInWrong: "Wrong user name or password, or the account is disabled.",
    signInTooMany: (s) => `Too many attempts; try again in ${s} seconds.`,
    signInOffline: "The server cannot be reached; check the network and try again.",
    signInFailed: (status) => `Signing in failed (${status}); try again shortly.`,
    signInNotDispatch: "This account cannot use the dispatch desk (it needs the dispatcher or manager role).",
    signOutPending: "Signing out has not reached the server yet and is being retried; until it does, this desk's session still works there.",
  },
};

function preferred() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved in STRINGS) return saved;
  const first = (navigator.languages?.[0] || navigator.language || "").toLowerCase();
  return first.startsWith("zh") ? "zh" : "en";
}

let lang = preferred();

export function currentLang() {
  return lang;
}

/** The BCP 47 locale for Intl formatting in the current language. */
export function locale() {
  return lang === "zh" ? "zh-CN" : "en-GB";
}

/** Whether `key` has a text (so unknown categories or event types fall back to raw values). */
export function has(key) {
  return key in STRINGS[lang] || key in STRINGS.en;
}

/** The text for `key` in the current language; a function entry is called with `args`. */
export function t(key, ...args) {
  const entry = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return typeof entry === "function" ? entry(...args) : entry;
}

/** Fill every element marked with data-i18n / data-i18n-placeholder under `root`. */
export function translatePage(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

export function toggleLang() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem(STORAGE_KEY, lang);
  translatePage();
}
