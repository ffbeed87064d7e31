-- wrk script: POST /v1/events with batches of 100 events, every event id unique, so each
-- request is real ingest (not an idempotent replay).
local counter = 0
local thread_id = 0
local batch = tonumber(os.getenv("BATCH") or "100")

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("AA_TOKEN")
  run_id = os.getenv("RUN_ID") or tostring(os.time())
end

function request()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    parts[i] = string.format(
      '{"id":"%s-t%d-%d","ts":"2026-01-05T12:00:00.000Z","agent_id":"bench","layer":"ebpf",' ..
      '"action":{"kind":"process_exec","path":"/bin/true","argv":["true"]},' ..
      '"decision":{"effect":"allow","reason":"permitted","message":"permitted by allow-all","policy_ids":["allow-all"],"decision_id":"%s-d%d-%d"}}',
      run_id, tid, counter, run_id, tid, counter)
  end
  return wrk.format(nil, "/v1/events", nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

function response(status, headers, body)
  if status ~= 200 then
    errors = (errors or 0) + 1
  end
end
