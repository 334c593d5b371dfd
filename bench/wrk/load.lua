-- load.lua: one request shape per run, set through the environment so one
-- script serves every workload:
--   BENCH_METHOD (GET), BENCH_BODY (file, optional),
--   BENCH_HEADERS ("Name: value|Name: value", optional).
-- done() prints one machine-readable line that run.sh parses.
local method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY") or ""
local hdrs = os.getenv("BENCH_HEADERS") or ""

wrk.method = method
if body_file ~= "" then
	local f = assert(io.open(body_file, "rb"))
	wrk.body = f:read("*a")
	f:close()
end
for h in string.gmatch(hdrs, "[^|]+") do
	local name, value = string.match(h, "^%s*([^:]+):%s*(.-)%s*$")
	if name then
		wrk.headers[name] = value
	end
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"WRKRESULT\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\n",
		summary.requests, summary.duration, summary.bytes,
		e.connect, e.read, e.write, e.status, e.timeout,
		latency:percentile(50), latency:percentile(99), latency.mean))
end
