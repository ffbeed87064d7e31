-- wrk: POST /v1/decide with a fixed body and the agent token (AA_TOKEN).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("AA_TOKEN")
wrk.body = '{"agent":"bench","action":{"kind":"tool_call","tool":"web_search","args":{"query":"agent governance"}}}'
