package medplan.platform_test

import rego.v1


subjects(violations) := {v.subject | some v in violations}

pools := {"dc1/h100": {"gpu": "H100"}, "aws/p5e": {"gpu": "H200"}}

test_workload_without_matching_gpu_fails if {
	workloads := {"train": {"accelerators": ["B200", "GB200"]}}
	found := data.medplan.platform.deny_workload_without_matching_gpu with input as {"pools": pools, "workloads": workloads}
	subjects(found) == {"workload/train"}
	some v in found
	v.message == "workload train allows only GPU models B200, GB200 but the pools offer H100, H200"
}

test_workload_without_matching_gpu_fails_without_pools if {
	found := data.medplan.platform.deny_workload_without_matching_gpu with input as {"pools": {}, "workloads": {"w": {"accelerators": ["H100"]}}}
	subjects(found) == {"workload/w"}
}

test_workload_without_matching_gpu_passes if {
	workloads := {
		"triage": {"accelerators": ["B200", "h100"]},
		"any": {"accelerators": []},
	}
	found := data.medplan.platform.deny_workload_without_matching_gpu with input as {"pools": pools, "workloads": workloads}
	count(found) == 0
}

route(reachable) := {"reachable": reachable, "sites": [], "links": [], "latency_ms": null}

flow(overrides) := object.union(
	{
		"from": {"kind": "dataset", "id": "pacs", "site": "dc1"},
		"to": {"kind": "site", "id": "aws", "site": "aws"},
		"classification": "phi",
		"phi": true,
		"route": route(true),
	},
	overrides,
)

test_phi_flow_unreachable_fails if {
	found := data.medplan.platform.deny_phi_flow_unreachable with input as {"flows": {"f1": flow({"route": route(false)})}}
	subjects(found) == {"flow/f1"}
}

test_phi_flow_unreachable_passes if {
	flows := {
		"ok": flow({}),
		"to-workload": flow({"route": null}),
		"public": flow({"classification": "public", "phi": false, "route": route(false)}),
	}
	found := data.medplan.platform.deny_phi_flow_unreachable with input as {"flows": flows}
	count(found) == 0
}
