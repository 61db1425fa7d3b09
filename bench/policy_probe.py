#!/usr/bin/env python3
"""Which gateway policy costs what: the REST bench route with each policy alone (bench/run.py helpers).
Run: python3 bench/policy_probe.py   (needs a build in build/; prints requests/s and p99 per variant)."""
import sys, os, tempfile, subprocess
sys.argv=[sys.argv[0]]
sys.path.insert(0,'/work/main/bench')
import run as B
st=B.stacklib.temp_stack(); st.start()
env={**os.environ,**st.env()}
echo=subprocess.Popen([os.path.join('/work/main/build','tests','mp-echo'),'--nats',env["MP_TEST_NATS_URL"],'--inline','--bytes','1000'],stdout=subprocess.PIPE,text=True)
assert "ready" in echo.stdout.readline()
class A: connections=64; seconds=4
tmp=tempfile.mkdtemp()
base=dict(B.POLICIES_OFF)
try:
    for name,envx,pol in [("all off",base,False),("all on",{},True),("only jwt",base,True),
                          ("only ratelimit",{**base,"MOONPORT_GATEWAY_RATE_LIMIT_ENABLED":"true"},False),
                          ("only validation",{**base,"MOONPORT_GATEWAY_VALIDATION":"true"},False),
                          ("only breaker+retry",{**base,"MOONPORT_GATEWAY_CIRCUIT_BREAKER_ENABLED":"true","MOONPORT_GATEWAY_RETRY_ENABLED":"true"},False)]:
        r=B.bench_rest(st,'/work/main/build/moonport',tmp,A,pol,env=envx)
        print("RESULT",name,int(r["rps"]),r["p99_ms"],flush=True)
finally:
    echo.terminate(); st.stop()
