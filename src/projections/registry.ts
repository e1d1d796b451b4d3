/**
 * The projections this build knows, by name: what `rollout projections list` shows and what
 * `rollout projections rebuild <name>` can rebuild. A new projection is added here and nowhere else.
 */
import { eventCounts } from "./eventCounts.ts"
import { makeProjectionRegistry, type ProjectionRegistry } from "./projection.ts"
import { runs } from "./runs.ts"
import { scoreboard } from "./scoreboard.ts"
import { toolHealth } from "./toolHealth.ts"

export const projectionRegistry: ProjectionRegistry = makeProjectionRegistry([
  eventCounts,
  runs,
  toolHealth,
  scoreboard,
])
