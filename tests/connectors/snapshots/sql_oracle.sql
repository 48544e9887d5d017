-- first read
SELECT population.person_registry.person_no, population.person_registry.resident_id, population.person_registry.name, population.person_registry.updated_at 
FROM population.person_registry 
WHERE population.person_registry.updated_at IS NOT NULL ORDER BY population.person_registry.updated_at, population.person_registry.person_no
-- params: {}

-- after (hwm, key)
SELECT population.person_registry.person_no, population.person_registry.resident_id, population.person_registry.name, population.person_registry.updated_at 
FROM population.person_registry 
WHERE population.person_registry.updated_at > :hwm OR population.person_registry.updated_at = :hwm AND population.person_registry.person_no > :hwm_key ORDER BY population.person_registry.updated_at, population.person_registry.person_no
-- params: {'hwm': datetime.datetime(2026, 11, 1, 9, 0, 0, 123456), 'hwm_key': 42}

-- look-back
SELECT population.person_registry.person_no, population.person_registry.resident_id, population.person_registry.name, population.person_registry.updated_at 
FROM population.person_registry 
WHERE population.person_registry.updated_at >= :lower ORDER BY population.person_registry.updated_at, population.person_registry.person_no
-- params: {'lower': datetime.datetime(2026, 11, 1, 9, 0, 0, 123456)}

-- preview
SELECT population.person_registry.person_no, population.person_registry.resident_id, population.person_registry.name, population.person_registry.updated_at 
FROM population.person_registry 
WHERE population.person_registry.updated_at IS NOT NULL ORDER BY population.person_registry.updated_at, population.person_registry.person_no
 FETCH FIRST 10 ROWS ONLY
-- params: {}

-- keys
SELECT population.person_registry.person_no 
FROM population.person_registry ORDER BY population.person_registry.person_no
-- params: {}

-- missing watermark
SELECT population.person_registry.person_no, population.person_registry.resident_id, population.person_registry.name, population.person_registry.updated_at 
FROM population.person_registry 
WHERE population.person_registry.updated_at IS NULL
-- params: {}

-- upsert
MERGE INTO population.person_registry t USING (SELECT :person_no AS person_no, :resident_id AS resident_id, :name AS name, :updated_at AS updated_at FROM dual) s ON (t.person_no = s.person_no) WHEN MATCHED THEN UPDATE SET t.resident_id = s.resident_id, t.name = s.name, t.updated_at = s.updated_at WHEN NOT MATCHED THEN INSERT (person_no, resident_id, name, updated_at) VALUES (s.person_no, s.resident_id, s.name, s.updated_at)
-- binds: ['person_no', 'resident_id', 'name', 'updated_at']
