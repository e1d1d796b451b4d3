/**
 * The projections this build knows, by name: what `rollout projections list` shows and what
 * `rollout projections rebuild <name>` can rebuild. A new projection is added here and nowhere else.
 */
import { batches } from "../projections/batches/batchPlan.ts"
import { eventCounts } from "../projections/eventCounts/eventCounts.ts"
import { makeProjectionRegistry, type ProjectionRegistry } from "../projections/projection.ts"
import { rewards } from "../projections/rewards/rewardsProjection.ts"
import { runs } from "../projections/runs/runs.ts"
import { scoreboard } from "../projections/scoreboard/scoreboard.ts"
import { toolHealth } from "../projections/toolHealth/toolHealth.ts"

export const projectionRegistry: ProjectionRegistry = makeProjectionRegistry([
  eventCounts,
  runs,
  toolHealth,
  scoreboard,
  rewards,
  batches,
])
