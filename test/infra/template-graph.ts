type CfnResource = { Properties?: unknown; DependsOn?: string | string[] };

/** Logical ids a resource points at: Ref, Fn::GetAtt, ${Id} inside Fn::Sub, and DependsOn. */
export function referencesOf(resource: CfnResource): Set<string> {
  const into = new Set<string>([resource.DependsOn ?? []].flat());
  const collect = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(collect);
    else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'Ref' && typeof inner === 'string') into.add(inner);
        else if (key === 'Fn::GetAtt' && Array.isArray(inner)) into.add(String(inner[0]));
        else if (key === 'Fn::Sub') {
          const text = Array.isArray(inner) ? String(inner[0]) : String(inner);
          for (const match of text.matchAll(/\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}/g)) into.add(match[1]!);
          if (Array.isArray(inner)) collect(inner[1]);
        } else collect(inner);
      }
    }
  };
  collect(resource.Properties);
  for (const id of [...into]) if (id.startsWith('AWS::')) into.delete(id);
  return into;
}

/** References to ids that are neither a resource nor a parameter. */
export function danglingReferences(resources: Record<string, CfnResource>, parameters: Iterable<string> = []): string[] {
  const known = new Set([...Object.keys(resources), ...parameters]);
  return Object.entries(resources).flatMap(([id, r]) => [...referencesOf(r)].filter((t) => !known.has(t)).map((t) => `${id} -> ${t}`));
}

/** One dependency cycle (as a path that ends where it starts), or [] when there is none. */
export function findCycle(resources: Record<string, CfnResource>): string[] {
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (id: string, trail: string[]): string[] => {
    if (state.get(id) === 'done' || !resources[id]) return [];
    if (state.get(id) === 'visiting') return [...trail.slice(trail.indexOf(id)), id];
    state.set(id, 'visiting');
    for (const next of referencesOf(resources[id])) {
      const found = visit(next, [...trail, id]);
      if (found.length > 0) return found;
    }
    state.set(id, 'done');
    return [];
  };
  for (const id of Object.keys(resources)) {
    const found = visit(id, []);
    if (found.length > 0) return found;
  }
  return [];
}
