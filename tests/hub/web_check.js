// Headless Chromium check of the hub's web pages (driven by playwright-core).
// usage: node web_check.js BASE_URL DATASET_ID OUT_DIR  -> prints one JSON line of findings
const { chromium } = require("playwright-core");

(async () => {
  const [base, repo, outDir] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
  page.on("response", (r) => { if (r.status() >= 400) errors.push(r.status() + " " + r.url()); });
  const out = { errors };

  await page.goto(base + "/", { waitUntil: "load" });
  out.index = await page.$$eval("#repos a", (as) => as.map((a) => a.textContent.trim()));

  await page.goto(`${base}/datasets/${repo}`, { waitUntil: "load" });
  out.title = (await page.textContent("#repo-title")).replace(/\s+/g, " ").trim();
  out.cardHeading = await page.$eval("#card h1", (h) => h.textContent.trim()).catch(() => null);
  out.images = await page.$$eval("#card img", (imgs) => imgs.map((i) => ({ src: i.getAttribute("src"), w: i.naturalWidth, complete: i.complete })));
  out.splits = await page.$$eval("table.preview", (ts) => ts.map((t) => ({ split: t.dataset.split, rows: t.querySelectorAll("tr").length - 1, header: [...t.querySelectorAll("th")].map((h) => h.textContent) })));
  await page.screenshot({ path: `${outDir}/repo.png`, fullPage: false });

  await page.click("text=Files");
  await page.waitForSelector("#files");
  out.files = await page.$$eval("#files td:first-child a", (as) => as.map((a) => a.textContent.trim()));
  await page.click("text=data/");
  await page.waitForSelector("#files");
  out.dataFiles = await page.$$eval("#files td:first-child a", (as) => as.map((a) => a.textContent.trim()));

  await page.click("text=Branches and tags");
  await page.waitForSelector("#tags");
  out.branches = await page.$$eval("#branches td:first-child", (tds) => tds.map((t) => t.textContent.trim()));
  out.tags = await page.$$eval("#tags td:first-child", (tds) => tds.map((t) => t.textContent.trim()));

  await page.click("text=History");
  await page.waitForSelector("#commits");
  out.commits = await page.$$eval("#commits tr td:nth-child(2)", (tds) => tds.map((t) => t.textContent.trim()));
  await page.click("#commits a");
  await page.waitForSelector("#changes");
  out.changes = await page.$$eval("#changes td:first-child", (tds) => tds.map((t) => t.textContent.trim()));

  await page.goto(`${base}/datasets/${repo}?rev=v1.0`, { waitUntil: "load" });
  out.tagRev = await page.textContent("#rev");
  await page.screenshot({ path: `${outDir}/repo-v1.png`, fullPage: true });
  await browser.close();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
