// Headless Chromium check of the hub's leaderboard page (driven by playwright-core).
// usage: node leaderboard_check.js BASE_URL OUT_DIR  -> prints one JSON line of findings
const { chromium } = require("playwright-core");

(async () => {
  const [base, outDir] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // console errors (a CSP violation, a script error); failed loads are caught by "response"
  // below, except Chromium's own /favicon.ico probe, which the hub does not serve
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push("console: " + m.text());
  });
  page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
  page.on("response", (r) => { if (r.status() >= 400) errors.push(r.status() + " " + r.url()); });
  const out = { errors };

  // from the index page, through the header link
  await page.goto(base + "/", { waitUntil: "load" });
  await page.click("#nav-leaderboard");
  await page.waitForSelector("table.lb");
  out.url = page.url();
  out.tables = await page.$$eval("table.lb", (ts) => ts.map((t) => ({
    task: t.dataset.task,
    header: [...t.querySelectorAll("thead th")].map((h) => h.getAttribute("data-k")),
    titles: [...t.querySelectorAll("thead th")].map((h) => h.textContent.trim()),
    models: [...t.querySelectorAll("tbody tr td.model")].map((td) => td.childNodes[0].textContent.trim()),
    unrelaxed: t.querySelectorAll("tbody .unrelaxed").length,
    intervals: [...t.querySelectorAll("tbody .ci")].map((s) => s.textContent.trim()),
  })));
  out.chart = {
    polygons: await page.$$eval("#rank-chart polygon.model", (ps) => ps.map((p) => p.dataset.model)),
    axes: await page.$$eval("#rank-chart text.axis", (ts) => ts.map((t) => t.textContent)),
    width: await page.$eval("#rank-chart", (s) => s.getBoundingClientRect().width),
  };

  // sort the interface table by d_Li: ascending, then descending
  const col = async (task, key) => page.$eval(`table.lb[data-task="${task}"]`, (t, key) => {
    const idx = [...t.querySelectorAll("thead th")].findIndex((h) => h.getAttribute("data-k") === key);
    return [...t.tBodies[0].rows].map((r) => r.cells[idx].getAttribute("data-v"));
  }, key);
  const models = async (task) => page.$$eval(`table.lb[data-task="${task}"] tbody td.model`,
    (tds) => tds.map((td) => td.childNodes[0].textContent.trim()));
  out.sort = { before: await models("interface") };
  await page.click('table.lb[data-task="interface"] th[data-k="d_Li"]');
  out.sort.asc = await col("interface", "d_Li");
  out.sort.ascModels = await models("interface");
  out.sort.ariaAsc = await page.getAttribute('table.lb[data-task="interface"] th[data-k="d_Li"]', "aria-sort");
  await page.click('table.lb[data-task="interface"] th[data-k="d_Li"]');
  out.sort.desc = await col("interface", "d_Li");
  out.sort.ariaDesc = await page.getAttribute('table.lb[data-task="interface"] th[data-k="d_Li"]', "aria-sort");
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${outDir}/leaderboard.png`, fullPage: false });
  await page.screenshot({ path: `${outDir}/leaderboard-full.png`, fullPage: true });

  // follow the predictions link of the scored submission, then its model link
  const pred = await page.$("table.lb a.pred-link");
  out.predHref = await pred.getAttribute("href");
  await pred.click();
  await page.waitForSelector("#repo-title");
  out.predTitle = (await page.textContent("#repo-title")).replace(/\s+/g, " ").trim();
  out.predFiles = await page.$$eval("#files td:first-child a", (as) => as.map((a) => a.textContent.trim())).catch(() => []);
  await page.goBack({ waitUntil: "load" });
  await page.click("table.lb a.model-link");
  await page.waitForSelector("#repo-title");
  out.modelTitle = (await page.textContent("#repo-title")).replace(/\s+/g, " ").trim();
  await browser.close();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
