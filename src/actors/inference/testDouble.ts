/**
 * How the scripted test double (the offline stand-in for a GPU model server, a program above this
 * floor) labels itself, so the pool's side can recognise it without importing the program: the
 * probe before a run accepts any model name from a server whose models are all owned by the test
 * double, since it answers any name. The program imports these labels from here.
 */

/** The header every response of the test double carries (value `scripted`). */
export const TEST_DOUBLE_HEADER = "x-rollout-test-double"

/** `owned_by` of every model the test double lists in `/v1/models`. */
export const TEST_DOUBLE_OWNER = "rollout-scripted-test-double"
