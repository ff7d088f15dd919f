// The page's words in Chinese and English. Chinese is the default for a browser that
// prefers it; the reporter's choice is remembered on the phone.

const STORAGE_KEY = "qly.lang";

// A size as the server writes it ("25.0 MB", or "10,485,761 bytes" just past a limit).
const inChinese = (size) => String(size).replace(/ bytes$/, " 字节");

const STRINGS = {
  zh: {
    title: "千里眼 · 现场报告",
    heading: "千里眼 · 现场报告",
    switchLanguage: "English",
    signInTitle: "登录",
    username: "用户名",
    password: "密码",
    signIn: "登录",
    signingIn: "正在登录…",
    signOut: "退出登录",
    signedInAs: (name) => `已登录：${name}`,
    signInMissing: "请填写用户名和密码。",
    signInWrong: "用户名或密码错误，或账号已停用。",
    signInTooMany: (s) => `尝试次数过多，请 ${s} 秒后再试。`,
    signInOffline: "无网络：联网后才能登录。已保存的报告不会丢失。",
    signInFailed: (status) => `登录失败（${status}），请稍后再试。`,
    signInNotReporter: "此账号不能提交现场报告。",
    signInExpired: "登录已失效，请重新登录。未发送的报告保存在手机上，登录后自动发送。",
    signInNeeded: "需要重新登录",
    waitingForSignIn: "登录后自动发送",
    storageFull: "手机存储空间不足，报告未能保存。请删除一些照片或文件后再发送。",
    storageFailed: "报告未能保存在手机上，已填写的内容仍在。请再点一次发送；仍不行，请先复制内容再刷新页面。",
    signOutUnsent: (n) => `还有 ${n} 份报告未发送。退出后，只有您本人重新登录才能发送。确定退出吗？`,
    waitingForOwner: (name) => `等待 ${name} 登录后发送`,
    failedForOwner: (name) => `${name} 的报告，由其本人登录后修改或移除`,
    text: "情况描述（必填）",
    textHint: "看到了什么？在哪里？",
    textCount: (n, max) => `${n} / ${max}`,
    photos: "照片（最多 5 张）",
    takePhoto: "拍照",
    pickPhoto: "从相册选择",
    removePhoto: "删除照片",
    tooManyPhotos: "最多只能附 5 张照片。",
    category: "类别（可选）",
    categoryNone: "—",
    "cat.track": "线路 / 轨道",
    "cat.signal": "信号",
    "cat.overhead_line": "接触网 / 供电",
    "cat.rolling_stock": "机车车辆",
    "cat.station": "车站设施",
    "cat.passengers": "旅客 / 客流",
    "cat.weather": "天气 / 自然灾害",
    "cat.safety": "人身安全",
    "cat.other": "其他",
    place: "地点（可选）",
    placeHint: "车站名或公里标，如 K123+400",
    attachLocation: "附上我的位置",
    locationOn: "已附位置（点击取消）",
    locating: "正在定位…",
    located: (m) => `已定位，精度约 ${m} 米`,
    locationFailed: (why) => `无法定位：${why}`,
    locationUnsupported: "此浏览器不支持定位",
    send: "发送报告",
    preparing: "正在处理照片…",
    textRequired: "请填写情况描述。",
    online: "网络已连接",
    offline: "无网络：报告会保存在手机上，联网后自动发送",
    myReports: "我的报告",
    noReports: "还没有报告。",
    "state.waiting": "等待网络",
    "state.sending": "发送中",
    "state.received": "已接收",
    "state.triaged": "已分级",
    "stage.triaged": "已分级，调度中心可见",
    "stage.alerted": "已通知相关负责人",
    "stage.acknowledged": "调度中心已确认，正在处理",
    "stage.resolved": "已处理完毕",
    "state.failed": "发送失败",
    retryNote: (why) => `将自动重试（${why}）`,
    networkDown: "网络不可用",
    uploadTooSlow: "网络太慢，上传超时",
    stillProcessing: "上一次发送仍在处理",
    tooManyAttempts: "发送过于频繁，稍后再试",
    photosAgain: "照片需重新上传",
    serverBusy: (status) => `服务器暂时不可用 ${status}`,
    severity: (level) => `严重程度：${level}`,
    "sev.info": "提示",
    "sev.minor": "一般",
    "sev.major": "严重",
    "sev.critical": "紧急",
    photoCount: (n) => `${n} 张照片`,
    edit: "修改后重发",
    dismiss: "移除",

    // The server's refusals, by their codes; a code without an entry shows the server's
    // own (English) words.
    "problem.invalid_report": "报告内容有误，请修改后重发。",
    "problem.invalid_request": "请求有误。",
    "problem.photos_refused": "有照片未通过检查，请换一张再发。",
    "problem.too_many_photos": "照片太多。",
    "problem.report_too_large": "照片加起来太大，请少发几张或换小一些的。",
    "problem.request_too_large": "照片文件太大，请换一张或少发几张。",
    "problem.photos_not_uploaded": "照片上传已过期，请重新发送。",
    "problem.idempotency_key_reused": "报告编号已用于另一份报告，请重新填写后发送。",
    "problem.not_allowed": "此账号不能提交报告或照片。",
    "field.report.text": "情况描述",
    "field.report.category": "类别",
    "field.report.place": "地点",
    "field.report.unit": "单位",
    "field.report.location": "位置",
    "field.report.occurred_at": "发生时间",
    "field.report.photo_ids": "照片",
    "field.report.client_report_id": "报告编号",
    "field.header.Idempotency-Key": "报告编号",
    "field.photos": "照片",
    "field.photo": (n) => `第 ${n} 张照片`,
    "err.missing": () => "必须填写",
    "err.string_too_short": ({ min_length }) =>
      min_length > 1 ? `至少 ${min_length} 个字` : "不能为空",
    "err.string_too_long": ({ max_length }) => `最多 ${max_length} 个字`,
    "err.not_printable": () => "不能包含控制字符（如换行）",
    "err.clock_before_1970": () => "手机时间有误（早于 1970 年），请校准手机时间",
    "err.photo_empty": () => "文件是空的",
    "err.photo_too_large": ({ size, limit }) =>
      `文件 ${inChinese(size)}，超过 ${inChinese(limit)} 的上限`,
    "err.photo_hides_content": () => "文件里夹带了照片以外的内容",
    "err.photo_format_not_taken": ({ format }) =>
      `不支持 ${format} 格式，请发 JPEG、PNG、WebP 或 HEIC 照片`,
    "err.photo_not_an_image": () => "不是照片（只收 JPEG、PNG、WebP 或 HEIC）",
    "err.photo_too_many_pixels": ({ width, height, limit }) =>
      `${width}×${height} 像素，超过 ${Math.round(limit / 10000)} 万像素的上限`,
    "err.photo_expands_too_far": () => "图片解码后像素过多",
    "err.photo_damaged": () => "照片已损坏或不完整",
    "err.too_many_photos": ({ limit, total }) => `一份报告最多 ${limit} 张，这次共 ${total} 张`,
    "err.photo_not_uploaded": () => "上传已过期，需重新上传",
    "err.used_for_another_report": () => "已用于另一份报告",
  },
  en: {
    title: "Qianliyan · Field report",
    heading: "Qianliyan · Field report",
    switchLanguage: "中文",
    signInTitle: "Sign in",
    username: "User name",
    password: "Password",
    signIn: "Sign in",
    signingIn: "Signing in…",
    signOut: "Sign out",
    signedInAs: (name) => `Signed in as ${name}`,
    signInMissing: "Please enter your user name and password.",
    signInWrong: "Wrong user name or password, or the account is disabled.",
    signInTooMany: (s) => `Too many attempts; try again in ${s} seconds.`,
    signInOffline: "Offline: signing in needs the network. Saved reports are not lost.",
    signInFailed: (status) => `Signing in failed (${status}); try again shortly.`,
    signInNotReporter: "This account cannot send field reports.",
    signInExpired:
      "Your session has ended; please sign in again. Reports not yet sent are kept on this phone and go out once you have signed in.",
    signInNeeded: "sign-in needed",
    waitingForSignIn: "will be sent once you sign in",
    storageFull: "The phone's storage is full: the report was not kept. Free some space, then send it.",
    storageFailed: "The report could not be kept on the phone; what you typed is still here. Send it again; if that fails too, copy the text, then reload the page.",
    signOutUnsent: (n) =>
      `${n} report(s) not sent yet. Once you sign out, only you, signed in again, can send them. Sign out?`,
    waitingForOwner: (name) => `waiting for ${name} to sign in`,
    failedForOwner: (name) => `${name}'s report: they can edit or remove it once signed in`,
    text: "What happened (required)",
    textHint: "What do you see? Where?",
    textCount: (n, max) => `${n} / ${max}`,
    photos: "Photos (up to 5)",
    takePhoto: "Take photo",
    pickPhoto: "Choose photos",
    removePhoto: "Remove photo",
    tooManyPhotos: "At most 5 photos per report.",
    category: "Category (optional)",
    categoryNone: "—",
    "cat.track": "Track",
    "cat.signal": "Signalling",
    "cat.overhead_line": "Overhead line / power",
    "cat.rolling_stock": "Rolling stock",
    "cat.station": "Station facilities",
    "cat.passengers": "Passengers / crowding",
    "cat.weather": "Weather / natural hazard",
    "cat.safety": "Personal safety",
    "cat.other": "Other",
    place: "Place (optional)",
    placeHint: "Station or km post, e.g. K123+400",
    attachLocation: "Attach my location",
    locationOn: "Location attached (tap to remove)",
    locating: "Finding your location…",
    located: (m) => `Location found, within about ${m} m`,
    locationFailed: (why) => `No location: ${why}`,
    locationUnsupported: "This browser cannot give a location",
    send: "Send report",
    preparing: "Preparing photos…",
    textRequired: "Please describe what happened.",
    online: "Online",
    offline: "Offline: reports are kept on this phone and sent when the network returns",
    myReports: "My reports",
    noReports: "No reports yet.",
    "state.waiting": "waiting for network",
    "state.sending": "sending",
    "state.received": "received",
    "state.triaged": "triaged",
    "stage.triaged": "Triaged; on the dispatch centre's feed",
    "stage.alerted": "The people responsible have been told",
    "stage.acknowledged": "Acknowledged by the dispatch centre, being dealt with",
    "stage.resolved": "Resolved",
    "state.failed": "not accepted",
    retryNote: (why) => `will retry by itself (${why})`,
    networkDown: "network unavailable",
    uploadTooSlow: "the upload timed out on a slow network",
    stillProcessing: "the last attempt is still being processed",
    tooManyAttempts: "too many attempts for now",
    photosAgain: "its photos must be uploaded again",
    serverBusy: (status) => `server busy ${status}`,
    severity: (level) => `Severity: ${level}`,
    "sev.info": "info",
    "sev.minor": "minor",
    "sev.major": "major",
    "sev.critical": "critical",
    photoCount: (n) => `${n} photo${n === 1 ? "" : "s"}`,
    edit: "Edit and resend",
    dismiss: "Remove",
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
