"""Sandbox-shaped source batches (field names and dirt as sandbox/CONTRACT.md describes)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pyarrow as pa


def commerce_batch() -> pd.DataFrame:
    """enterprise_registry rows as pyodbc returns them (DECIMAL, DATE, DATETIME)."""
    return pd.DataFrame(
        {
            "ent_id": [1001, 1002, 1003, 1004],
            "uscc": ["91330322MA28ABCD1X", None, " 91330322 ma28abce2y ", ""],
            "reg_no": ["330322000012345", "330322000054321", None, "330322000011111"],
            "org_code": ["MA28ABCD-1", "14725836-9", None, None],
            "ent_name": ["洞頭海產有限公司", "温州Ａ贸易 有限公司", "  北岙建设集团  ", "测试企业"],
            "legal_rep_id": ["330322198001011234", "33032219750505002x", None, None],
            "legal_rep_name": ["張 三", "李四", "王五", None],
            "ent_type": ["有限责任公司", "有限责任公司", "股份有限公司", None],
            "reg_capital": [Decimal("100.50"), Decimal("50"), None, Decimal("1")],
            "established_date": [dt.date(2016, 5, 4), dt.date(1998, 1, 2), None, dt.date(2020, 2, 29)],
            "business_scope": ["水产品加工", "贸易", None, None],
            "address": ["浙江省温州市洞头区北岙街道中心路12号", "浙江省温州市鹿城区　人民路 8号", None, None],
            "region_code": ["330322", "330302", "330322", "３３０３２２"],
            "status": ["存续", "吊销", "在业", "注销"],
            "reg_authority": ["洞头区市场监督管理局", None, None, None],
            "license_issue_date": [dt.date(2016, 5, 4), None, None, None],
            "updated_at": pd.to_datetime(
                ["2016-05-04 10:00:00", "2017-01-01 08:00:00", "2018-03-03 09:30:00", "2020-03-01 12:00:00"]
            ),
        }
    )


def tax_batch() -> pd.DataFrame:
    """Taxpayer objects as zeep serialises them (dates as date, updated_at with +08:00)."""
    return pd.DataFrame(
        {
            "taxpayer_code": ["91330322MA28ABCD1X", "330322147258369", "  ", "３３０３２２１４７２５８３６９"],
            "taxpayer_name": ["洞头海产有限公司", "温州A贸易有限公司", "无码户", "温州A贸易有限公司"],
            "legal_rep_id": ["330322198001011234", None, None, None],
            "legal_rep_name": ["张三", "李四", None, "李四"],
            "reg_address": ["洞头区中心路12号", None, None, None],
            "tax_authority_code": ["13303220000", "13303020000", None, "13303020000"],
            "tax_authority_name": ["国家税务总局温州市洞头区税务局", None, None, None],
            "registration_date": ["2016-05-10", "1998/1/5", None, "19980105"],
            "taxpayer_status": ["01", "02", "03", "03"],
            "credit_rating": ["a", "B", None, "M"],
            "updated_at": [
                "2016-05-10T09:00:00+08:00",
                "2017-01-01T08:00:00+08:00",
                "2017-01-02T08:00:00+08:00",
                "2017-01-03T08:00:00+08:00",
            ],
        }
    )


def person_batch() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_no": [1, 2, 3, 4, 5],
            "resident_id": [
                "330322198001011234",
                "33032219750505002x",
                "330322800101123",
                None,
                "３３０３２２１９９００１０２００１１",
            ],
            "name": ["張三", "李 四", "王五", "赵六", ""],
            "sex": ["1", "2", "1", "9", "男"],
            "birth_date": [dt.date(1980, 1, 1), dt.date(1975, 5, 5), dt.date(1980, 1, 1), None, dt.date(1990, 1, 2)],
            "ethnicity": ["汉族", "汉族", "畲族", None, "汉族"],
            "address": ["浙江省温州市洞头区北岙街道中心路12号", "浙江省温州市鹿城区人民路8号", None, None, None],
            "region_code": ["330322", "330302", "330322", None, "330322"],
            "status": ["alive", "deceased", "moved", "alive", "alive"],
            "phone": ["138-1234-5678", None, None, None, None],
            "updated_at": pd.to_datetime(["2016-01-01 00:00:00"] * 5),
        }
    )


OWNER_TYPE = pa.struct(
    [("Name", pa.string()), ("IdType", pa.string()), ("IdCode", pa.string()), ("Share", pa.string())]
)


def property_batch() -> pa.Table:
    """PropertyRight elements with repeated Owner elements (list of structs)."""
    owners = [
        [
            {"Name": "張三", "IdType": "resident_id", "IdCode": "330322198001011234", "Share": "共同共有"},
            {"Name": "李四", "IdType": "resident_id", "IdCode": "33032219750505002x", "Share": "共同共有"},
        ],
        [{"Name": "洞头海产有限公司", "IdType": "uscc", "IdCode": "91330322MA28ABCD1X", "Share": "单独所有"}],
        [],
        None,
    ]
    return pa.table(
        {
            "unitNo": [
                "330322001001GB00001F00010001",
                "330322001001GB00002F00010001",
                "330322001001GB00003F00010001",
                None,
            ],
            "version": ["3", "1", "1", "1"],
            "CertificateNo": ["浙(2016)洞头区不动产权第0001234号", "浙(2017)洞头区不动产权第0000001号", None, "x"],
            "RightType": ["国有建设用地使用权/房屋所有权"] * 4,
            "Location": ["洞头区北岙街道中心路12号", "洞头区东屏街道", None, None],
            "Area": ["89.50", "1200", None, None],
            "LandUse": ["住宅", "工业", None, None],
            "RegisterDate": ["2016-05-04", "2017年3月1日", None, None],
            "Status": ["registered", "mortgaged", "cancelled", "registered"],
            "Owner": pa.array(owners, pa.list_(OWNER_TYPE)),
        }
    )


def property_batch_flat() -> pa.Table:
    """The same rights as the XML connector delivers them: Owner children joined by ';'."""
    table = property_batch()
    owners = table["Owner"].to_pylist()

    def joined(key: str) -> list[str | None]:
        return [";".join(o[key] for o in row) if row else None for row in owners]

    table = table.drop_columns(["Owner"])
    for key in ("Name", "IdType", "IdCode", "Share"):
        table = table.append_column(f"Owner{key}", pa.array(joined(key), pa.string()))
    return table


def approval_batch() -> pa.Table:
    """ApprovalResult elements, <Applicant> and <Issuer code=".."> flattened by the XML connector."""
    return pa.table(
        {
            "approvalNo": ["浙洞自然资预〔2016〕12号", "浙洞自然资预〔2016〕13号"],
            "version": ["1", "2"],
            "ApprovalType": ["land_use_pre_review", "land_use_pre_review"],
            "ProjectName": ["洞头海產加工园", "北岙建设项目"],
            "ApplicantName": ["洞头海产有限公司", "北岙建设集团"],
            "ApplicantIdType": ["uscc", "org_code"],
            "ApplicantIdCode": ["91330322MA28ABCD1X", "14725836-9"],
            "IssuerCode": ["330322", "330322"],
            "IssuerName": ["温州市洞头区自然资源局", "温州市洞头区自然资源局"],
            "Opinion": ["符合土地利用总体规划", "原则同意"],
            "Conclusion": ["approved", "approved_with_conditions"],
            "IssueDate": ["2016-03-01", "2016-04-01"],
            "ValidUntil": ["2019-03-01", None],
            "LandArea": ["12000.5", "800"],
            "Location": ["洞头区", "北岙街道"],
        }
    )


def insured_batch() -> pd.DataFrame:
    """The social-insurance bureau's insured_person rows (sandbox/social_insurance/registry.py)."""
    return pd.DataFrame(
        {
            "insured_no": [500001, 500002, 500003],
            "id_number": ["33032219800101001x", "330322800101001", "３３０３２２１９８５０２０２００２３"],
            "full_name": ["张 三", "李四", "王五"],
            "gender": ["男", "女", None],
            "birth_date": [dt.date(1980, 1, 1), dt.date(1980, 1, 1), None],
            "region": ["330322", "330322", "330302"],
            "insured_since": ["2015-03-01", "2015年3月1日", "20150301"],
            "ins_status": ["参保缴费", "待核", "终止参保"],
            "employer_uscc": ["91330322MA28ABCD1X", "330322000012345", None],
            "employer_name": ["洞头海产有限公司", "温州贸易有限公司", None],
            "updated_at": pd.to_datetime(["2024-01-01 08:00:00", "2024-01-02 09:00:00", "2024-01-03 10:00:00"]),
        }
    )
